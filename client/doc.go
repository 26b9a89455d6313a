// Package client is the Go client of the Lookalike REST API: typed, context-aware methods for the
// main routes (collections, adding items one by one or in batches, reading, patching, scrolling,
// counting and deleting them, searching by photo, item or vector, similar items, recommendations
// and batches of queries, tag suggestions and bulk tagging, duplicate clusters, models, shadow
// rebuilds with their report, switch and rollback). `lookalike
// COMMAND --server URL` is built on it.
//
// It imports nothing of the server, so a program that uses it links none of it.
//
//	c, err := client.New("http://localhost:8080", client.WithAPIKey(os.Getenv("LOOKALIKE_KEY")))
//	if err != nil { ... }
//	res, err := c.Recommend(ctx, "default", client.Recommendation{
//		Positive: []client.Example{{ID: "sku-1"}, {ID: "sku-7", Weight: 2}},
//		Negative: []client.Example{{ID: "sku-3"}},
//		Params:   client.Params{K: 10, Filter: `category = "shoes"`},
//	})
//	var apiErr *client.Error
//	if errors.As(err, &apiErr) && apiErr.Code == "item_not_found" { ... }
//
// # Errors and retries
//
// Every answer of the server that is not a success becomes a *Error with its HTTP status and the
// API's error code, message and details. A request refused for load (429, or 503 with
// Retry-After: the server did not act on it) is sent again after the wait the server asks for,
// at most MaxRetries times and only while that wait is at most MaxRetryWait (WithRetries);
// without Retry-After the client backs off exponentially from 200 ms. Waiting ends early when the
// context is done. Network errors are returned as they are, never retried: the request may have
// been acted on.
//
// # Caveats
//
// Metadata travels as json.RawMessage, so numbers keep every digit (a 19-digit EAN survives);
// marshal your own struct into it. Filters (Params.Filter, Bulk.Filter, ListOptions.Filter) are
// an expression string (`price < 100 AND brand IN ("acme")`) or a value that marshals to the JSON
// filter form ({"price": {"lt": 100}}).
package client
