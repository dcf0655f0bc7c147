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
