#include "text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Characters that show nothing: zero-width space, (non-)joiners, word joiner, BOM, and
 * the bidirectional marks and overrides. They must not make a name differ. */
static size_t invisible(const unsigned char *p)
{
	if (p[0] == 0xe2 && p[1] == 0x80 &&
	    ((p[2] >= 0x8b && p[2] <= 0x8f) || (p[2] >= 0xaa && p[2] <= 0xae)))
		return 3;
	if (p[0] == 0xe2 && p[1] == 0x81 && (p[2] == 0xa0 || (p[2] >= 0xa6 && p[2] <= 0xa9)))
		return 3;
	if (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
		return 3;
	return 0;
}

char *text_key(const char *s)
{
	size_t n = strlen(s);
	char *out = xmalloc(n + 1);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t skip = c == 0xe2 || c == 0xef
				      ? (i + 2 < n ? invisible((const unsigned char *)s + i) : 0)
				      : 0;
		if (skip) {
			i += skip - 1;
			continue;
		}
		if (c >= 0x80 || is_alnum(c))
			out[j++] = (char)lower(c);
		else if ((c == '+' || c == '#') && j > 0 && i > 0 &&
			 (is_alnum((unsigned char)s[i - 1]) || s[i - 1] == '+' || s[i - 1] == '#') &&
			 !is_alnum((unsigned char)s[i + 1]))
			out[j++] = (char)c; /* "C++" and "C#" are not "C"; "N+1" is "n1" */
	}
	out[j] = '\0';
	return out;
}

char *text_slug(const char *s)
{
	size_t n = strlen(s);
	char *out = xmalloc(n + 1);
	size_t j = 0;
	bool dash = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_alnum(c)) {
			if (dash && j > 0)
				out[j++] = '-';
			out[j++] = (char)lower(c);
			dash = false;
		} else {
			dash = true;
		}
	}
	out[j] = '\0';
	return out;
}

int text_distance(const char *a, const char *b, int max)
{
	size_t la = strlen(a), lb = strlen(b);
	if ((la > lb ? la - lb : lb - la) > (size_t)max)
		return max + 1;
	/* Three rows: two back (for transpositions), previous, current. */
	int *rows = xmalloc(3 * (lb + 1) * sizeof(int));
	int *pp = rows, *p = rows + lb + 1, *c = rows + 2 * (lb + 1);
	for (size_t j = 0; j <= lb; j++)
		p[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		c[0] = (int)i;
		int best = c[0];
		for (size_t j = 1; j <= lb; j++) {
			int cost = a[i - 1] != b[j - 1];
			int v = p[j] + 1;
			if (c[j - 1] + 1 < v)
				v = c[j - 1] + 1;
			if (p[j - 1] + cost < v)
				v = p[j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    pp[j - 2] + 1 < v)
				v = pp[j - 2] + 1;
			c[j] = v;
			if (v < best)
				best = v;
		}
		if (best > max) {
			free(rows);
			return max + 1;
		}
		int *t = pp;
		pp = p;
		p = c;
		c = t;
	}
	int d = p[lb];
	free(rows);
	return d > max ? max + 1 : d;
}

int text_percent(int num, int den)
{
	if (den <= 0 || num <= 0)
		return 0;
	return (int)((int64_t)num * 100 / den);
}

void text_bar(struct strbuf *sb, int num, int den, int width)
{
	int filled = den > 0 ? (int)((int64_t)num * width / den) : 0;
	if (filled == 0 && num > 0)
		filled = 1; /* any progress at all shows */
	for (int i = 0; i < width; i++)
		sb_adds(sb, i < filled ? "\u2588" : "\u2591");
}

char *text_trim(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	size_t i = 0;
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	if (i)
		memmove(s, s + i, n - i + 1);
	return s;
}

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool text_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	while (n) {
		size_t k = utf8_seq(p, n);
		if (!k)
			return false;
		p += k;
		n -= k;
	}
	return true;
}

size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* Code point ranges, sorted, for text_display_width(). */
struct cp_range {
	uint32_t lo, hi;
};

/* Marks drawn on the character before them, and characters that show nothing. */
static const struct cp_range zero_width[] = {
	{0x0300, 0x036f},   {0x0483, 0x0489},   {0x0591, 0x05bd},   {0x05bf, 0x05bf},
	{0x05c1, 0x05c2},   {0x05c4, 0x05c5},   {0x05c7, 0x05c7},   {0x0610, 0x061a},
	{0x064b, 0x065f},   {0x0670, 0x0670},   {0x06d6, 0x06dc},   {0x06df, 0x06e4},
	{0x06e7, 0x06e8},   {0x06ea, 0x06ed},   {0x0900, 0x0902},   {0x093a, 0x093a},
	{0x093c, 0x093c},   {0x0941, 0x0948},   {0x094d, 0x094d},   {0x0951, 0x0957},
	{0x0e31, 0x0e31},   {0x0e34, 0x0e3a},   {0x0e47, 0x0e4e},   {0x1160, 0x11ff},
	{0x1ab0, 0x1aff},   {0x1dc0, 0x1dff},   {0x200b, 0x200f},   {0x202a, 0x202e},
	{0x2060, 0x2064},   {0x2066, 0x206f},   {0x20d0, 0x20ff},   {0x302a, 0x302d},
	{0x3099, 0x309a},   {0xfe00, 0xfe0f},   {0xfe20, 0xfe2f},   {0xfeff, 0xfeff},
	{0x1d167, 0x1d169}, {0x1d17b, 0x1d182}, {0xe0001, 0xe007f}, {0xe0100, 0xe01ef},
};

/* East Asian Wide (W) and Fullwidth (F) characters: two columns each. */
static const struct cp_range wide[] = {
	{0x1100, 0x115f},   {0x231a, 0x231b},   {0x2329, 0x232a},   {0x23e9, 0x23ec},
	{0x23f0, 0x23f0},   {0x23f3, 0x23f3},   {0x25fd, 0x25fe},   {0x2614, 0x2615},
	{0x2648, 0x2653},   {0x267f, 0x267f},   {0x2693, 0x2693},   {0x26a1, 0x26a1},
	{0x26aa, 0x26ab},   {0x26bd, 0x26be},   {0x26c4, 0x26c5},   {0x26ce, 0x26ce},
	{0x26d4, 0x26d4},   {0x26ea, 0x26ea},   {0x26f2, 0x26f3},   {0x26f5, 0x26f5},
	{0x26fa, 0x26fa},   {0x26fd, 0x26fd},   {0x2705, 0x2705},   {0x270a, 0x270b},
	{0x2728, 0x2728},   {0x274c, 0x274c},   {0x274e, 0x274e},   {0x2753, 0x2755},
	{0x2757, 0x2757},   {0x2795, 0x2797},   {0x27b0, 0x27b0},   {0x27bf, 0x27bf},
	{0x2b1b, 0x2b1c},   {0x2b50, 0x2b50},   {0x2b55, 0x2b55},   {0x2e80, 0x303e},
	{0x3041, 0x33ff},   {0x3400, 0x4dbf},   {0x4e00, 0x9fff},   {0xa000, 0xa4cf},
	{0xa960, 0xa97f},   {0xac00, 0xd7a3},   {0xf900, 0xfaff},   {0xfe10, 0xfe19},
	{0xfe30, 0xfe6f},   {0xff00, 0xff60},   {0xffe0, 0xffe6},   {0x16fe0, 0x16fe4},
	{0x17000, 0x18cff}, {0x1b000, 0x1b2ff}, {0x1f004, 0x1f004}, {0x1f0cf, 0x1f0cf},
	{0x1f18e, 0x1f18e}, {0x1f191, 0x1f19a}, {0x1f200, 0x1f251}, {0x1f300, 0x1f320},
	{0x1f32d, 0x1f335}, {0x1f337, 0x1f37c}, {0x1f37e, 0x1f393}, {0x1f3a0, 0x1f3ca},
	{0x1f3cf, 0x1f3d3}, {0x1f3e0, 0x1f3f0}, {0x1f3f4, 0x1f3f4}, {0x1f3f8, 0x1f43e},
	{0x1f440, 0x1f440}, {0x1f442, 0x1f4fc}, {0x1f4ff, 0x1f53d}, {0x1f54b, 0x1f54e},
	{0x1f550, 0x1f567}, {0x1f57a, 0x1f57a}, {0x1f595, 0x1f596}, {0x1f5a4, 0x1f5a4},
	{0x1f5fb, 0x1f64f}, {0x1f680, 0x1f6c5}, {0x1f6cc, 0x1f6cc}, {0x1f6d0, 0x1f6d2},
	{0x1f6d5, 0x1f6d7}, {0x1f6eb, 0x1f6ec}, {0x1f6f4, 0x1f6fc}, {0x1f7e0, 0x1f7eb},
	{0x1f90c, 0x1f93a}, {0x1f93c, 0x1f945}, {0x1f947, 0x1f9ff}, {0x1fa70, 0x1faff},
	{0x20000, 0x2fffd}, {0x30000, 0x3fffd},
};

static bool in_ranges(const struct cp_range *r, size_t n, uint32_t cp)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cp < r[mid].lo)
			hi = mid;
		else if (cp > r[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

size_t text_display_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), w = 0;
	while (n) {
		size_t k = utf8_seq(p, n);
		if (!k) {
			w++; /* shown as one replacement character */
			p++;
			n--;
			continue;
		}
		uint32_t cp = k == 1   ? p[0]
			      : k == 2 ? (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f)
			      : k == 3 ? (uint32_t)(p[0] & 0x0f) << 12 |
						 (uint32_t)(p[1] & 0x3f) << 6 | (p[2] & 0x3f)
				       : (uint32_t)(p[0] & 0x07) << 18 |
						 (uint32_t)(p[1] & 0x3f) << 12 |
						 (uint32_t)(p[2] & 0x3f) << 6 | (p[3] & 0x3f);
		if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) ||
		    in_ranges(zero_width, ARRAY_SIZE(zero_width), cp))
			;
		else if (in_ranges(wide, ARRAY_SIZE(wide), cp))
			w += 2;
		else
			w++;
		p += k;
		n -= k;
	}
	return w;
}

void text_add_padded(struct strbuf *sb, const char *s, size_t columns)
{
	sb_adds(sb, s);
	for (size_t w = text_display_width(s); w < columns; w++)
		sb_addc(sb, ' ');
}

const char *text_plural(long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* Bidirectional embeddings, overrides and isolates (U+202A-202E, U+2066-2069): they
 * reorder the text around them, so a name could make a reply read backwards. */
static bool bidi_control(const unsigned char *p, size_t k)
{
	return k == 3 && p[0] == 0xe2 &&
	       ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
		(p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9));
}

size_t text_unsafe(const char *s, size_t n, bool *unsafe)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t k = utf8_seq(p, n);
	*unsafe = true;
	if (!k)
		return 1; /* a byte that is not UTF-8 */
	if (k == 1 && (*p < 0x20 || *p == 0x7f))
		return 1;
	/* C1 controls (U+0080..U+009F) act as escapes on some terminals too. */
	if (k == 2 && p[0] == 0xc2 && p[1] < 0xa0)
		return 2;
	*unsafe = bidi_control(p, k);
	return k;
}

void text_add_printable(struct strbuf *sb, const char *s, bool keep_newlines)
{
	size_t n = strlen(s);
	while (n) {
		bool unsafe;
		size_t k = text_unsafe(s, n, &unsafe);
		if (unsafe && !(keep_newlines && *s == '\n'))
			sb_adds(sb, "\xef\xbf\xbd");
		else
			sb_add(sb, s, k);
		s += k;
		n -= k;
	}
}

bool text_ieq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (lower((unsigned char)*a) != lower((unsigned char)*b))
			return false;
	return *a == *b;
}
