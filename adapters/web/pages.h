/*
 * The group's page on the HTTP server: GET /g/TOKEN (HTML) and GET
 * /g/TOKEN.json (the same data as JSON), asked of the bot through the door
 * (door_read(): rendered by bot/page.h on the dispatcher thread). A path that is not a token's shape, an unknown
 * token, and the token of a page turned off or replaced are all the same 404.
 */
#ifndef COHORT_WEB_PAGES_H
#define COHORT_WEB_PAGES_H

#include "web.h"

struct door;

/* Fills *out with the route to add with web_add_route(); door is borrowed and outlives it. */
void pages_route(struct door *door, struct web_route *out);

#endif
