// A search's results (protocol version 2; pure, no DOM): pages of `SearchResults` merged newest
// first, each message once, and where the next page starts (`before` = the oldest id shown).

/** The messages asked for per page (the server caps it at its history page size). */
export const SEARCH_PAGE = 20;
/** The most results kept: paging stops there. */
export const MAX_RESULTS = 1000;

/**
 * A new search for `text` (of messages older than `before`, if given): `{ text, before,
 * results, more, loading, error }`.
 */
export function newSearch(text, before = null) {
  return { text, before, results: [], more: false, loading: false, error: "" };
}

/** Adds a `SearchResults` page; returns how many messages were new. */
export function addResults(search, { messages, more }) {
  const seen = new Set(search.results.map((m) => m.id.toString()));
  let added = 0;
  for (const m of messages) {
    if (seen.has(m.id.toString()) || search.results.length >= MAX_RESULTS) continue;
    seen.add(m.id.toString());
    search.results.push(m);
    added += 1;
  }
  search.results.sort((a, b) => (a.id > b.id ? -1 : a.id < b.id ? 1 : 0));
  // A page that adds nothing cannot lead further.
  search.more = more && added > 0 && search.results.length < MAX_RESULTS;
  return added;
}

/** The `Search` request for the next page (`before` the oldest result), or the first page. */
export function searchRequest(search) {
  const last = search.results[search.results.length - 1];
  return { type: "Search", text: search.text, before: last ? last.id : search.before, limit: SEARCH_PAGE };
}
