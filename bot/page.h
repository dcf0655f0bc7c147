/*
 * The group's page (DESIGN §11): a capability link per group, and the page
 * itself, rendered on the server as HTML with inline SVG charts (no script),
 * and the same data as JSON.
 *
 * page_collect() reads a group's data from the store; page_render_html() and
 * page_render_json() are pure functions of what it collected. bot_page() is
 * what the HTTP server asks for, on the bot's thread.
 */
#ifndef COHORT_PAGE_H
#define COHORT_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bot;
struct strbuf;

/* base64url of 24 bytes from getrandom(2): 192 random bits, 32 characters. */
#define PAGE_TOKEN_LEN 32

/*
 * A new token into out (PAGE_TOKEN_LEN + 1 bytes). Returns COHORT_OK, or
 * COHORT_ERR_IO when the system gives no randomness (nothing is made up).
 */
int page_token_new(char *out);
/* Whether s has a token's shape: PAGE_TOKEN_LEN characters of [A-Za-z0-9_-]. */
bool page_token_shape(const char *s);

#define PAGE_DAYS 119  /* the progress chart and the streak calendar: 17 weeks */
#define PAGE_WEEKS 8   /* each member's trend: finishes per week */
#define PAGE_BOARD 20  /* rows in each leaderboard */
#define PAGE_HEAT 40   /* members in the coverage heat map (the top of the all-time board) */
#define PAGE_FINISHES 30

enum page_period { PAGE_ALL, PAGE_WEEK, PAGE_MONTH };

struct page_member {
	char *id, *name;
	int points[3]; /* by enum page_period */
	int rank[3];   /* 0: not on that board */
	int streak;    /* current streak, in days */
	int trend[PAGE_WEEKS]; /* finishes per local week, oldest first; the last is this week */
	int *coverage;         /* per section, percent of its topics done or skipped; NULL: not
				* in the heat map */
};

struct page_finish {
	char *member, *topic, *section, *note; /* note "" when none */
	char date[11];                         /* local "YYYY-MM-DD" */
};

/* What the page shows. Owned: page_data_release() frees it all. */
struct page_data {
	char *group_id;
	char *timezone;
	char *roadmap; /* "the built-in backend roadmap" or a file name */
	char today[11];
	int topics;   /* on the roadmap */
	int members;  /* in the group */
	int percent;  /* the group's progress: finished (done or skipped) records over
		       * members x topics */
	size_t nsections;
	char **sections; /* the roadmap's top-level sections */
	struct page_member *m;
	size_t nm;
	size_t *board[3]; /* indexes into m, best first, by enum page_period */
	size_t nboard[3];
	size_t *heat; /* indexes into m: the heat map's rows */
	size_t nheat;
	char day[PAGE_DAYS][11]; /* local dates, oldest first; the last is today */
	int weekday0;            /* day[0]'s weekday, 0 = Monday */
	int done[PAGE_DAYS];     /* topics finished that day */
	int total[PAGE_DAYS];    /* topics done in the group at the end of that day */
	struct page_finish *fin; /* newest first */
	size_t nfin;
};

void page_data_release(struct page_data *d);

/*
 * Reads group_id's page data at the bot's clock into *out (zeroed first).
 * Returns COHORT_OK or COHORT_ERR_STORE (out is released).
 */
int page_collect(struct bot *b, const char *group_id, struct page_data *out);

/* The page as one HTML document (UTF-8), appended to out. Every user text is escaped. */
void page_render_html(const struct page_data *d, struct strbuf *out);
/* The same data as one JSON object, appended to out. */
void page_render_json(const struct page_data *d, struct strbuf *out);

enum page_format { PAGE_HTML, PAGE_JSON };

/*
 * The page of the group whose page is on under token, appended to out.
 * Bot thread. Returns COHORT_OK, COHORT_ERR_NOT_FOUND (no such token, or
 * the page is off or was given a new link: nothing appended) or
 * COHORT_ERR_STORE.
 */
int bot_page(struct bot *b, const char *token, enum page_format fmt, struct strbuf *out);

/* The link to the group's page when it is on and a public URL is set, else NULL (a new string). */
char *bot_page_link(struct bot *b, const char *group_id);

#endif
