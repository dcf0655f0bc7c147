/* Text helpers: matching keys, slugs, edit distance, progress bars, UTF-8. */
#ifndef COHORT_TEXT_H
#define COHORT_TEXT_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * The matching key of s: ASCII letters lowercased, ASCII digits kept, every
 * other ASCII byte dropped, non-ASCII bytes kept as they are, except a '+'
 * or '#' that ends a word ("C++", "C#": not the key "c"; "N+1" is "n1").
 * "Rabbit MQ", "rabbitmq" and "RabbitMQ!" share the key "rabbitmq". Returns
 * a new string.
 */
char *text_key(const char *s);

/* The id slug of s: lowercase ASCII letters and digits, other runs become one '-'. */
char *text_slug(const char *s);

/*
 * Optimal-string-alignment edit distance between a and b (a transposition
 * counts as one edit). Stops early and returns max + 1 once the distance is
 * known to exceed max.
 */
int text_distance(const char *a, const char *b, int max);

/* Whole percent of num/den, rounded down; 0 when den is 0. */
int text_percent(int num, int den);

/* Appends a bar of width cells, filled in proportion to num/den. */
void text_bar(struct strbuf *sb, int num, int den, int width);

/* Trims ASCII white space at both ends, in place; returns s. */
char *text_trim(char *s);

/* True when s[0..n) is well-formed UTF-8. */
bool text_utf8_valid(const char *s, size_t n);

/* Number of UTF-8 code points in s (bytes that are not continuation bytes). */
size_t text_width(const char *s);

/*
 * The columns s takes in a monospace font: one per character, two for East
 * Asian wide and fullwidth characters (日本, ＡＢ, most emoji), none for
 * combining marks, zero-width characters and controls. A byte that is not
 * UTF-8 counts one column.
 */
size_t text_display_width(const char *s);

/*
 * Appends s, then spaces until it fills `columns` display columns (nothing
 * when s is that wide already), so names line up in a table.
 */
void text_add_padded(struct strbuf *sb, const char *s, size_t columns);

/* one when n is 1, else many: "1 topic", "2 topics". */
const char *text_plural(long n, const char *one, const char *many);

/*
 * Looks at the character at s (n bytes left): returns its length, and sets
 * *unsafe when it must not be shown as is — a control character, a byte that
 * is not UTF-8, or a bidirectional override that reorders the text around it.
 */
size_t text_unsafe(const char *s, size_t n, bool *unsafe);

/*
 * Appends s to sb for showing on a terminal: control characters (C0, DEL, and
 * ill-formed UTF-8 bytes) become U+FFFD, so user text cannot move the cursor,
 * recolour the screen or forge lines.
 */
void text_add_printable(struct strbuf *sb, const char *s, bool keep_newlines);

/* Case-insensitive ASCII comparison. */
bool text_ieq(const char *a, const char *b);

#endif
