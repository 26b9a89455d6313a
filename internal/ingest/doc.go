// Package ingest is the one way photos become items: the REST API (single items and batches), the
// CLI's `index`, and the server's demo loader all store through Store, so the duplicate policy,
// content-hash idempotence, thumbnails, per-item errors and the isolation of a bad item live here
// once.
//
// Store embeds a group of inputs in one engine call, makes a thumbnail of each, asks the injected
// DuplicateFinder (the catalog-intelligence code) whether the photo is already in the collection,
// and then stores, rejects or merges it (Policy). Items are written with one index.Put; when the
// index refuses the group for one item (invalid, or a stale IfVersion) the items are retried one
// by one, so that item fails alone. Merges go through index's conditional update (Collection.Update),
// so a merge never overwrites a write that landed after it read the item.
//
// Run feeds Store from files: Collect turns paths (files, folders, CSV or JSONL manifests) into
// sources, and Run loads them in concurrent batches. Items whose image and metadata are unchanged
// are reported Unchanged without being embedded again, so an interrupted load resumes where it
// stopped; a corrupt file is a per-item failure, never fatal.
//
// # Caveats
//
// An input without an id gets ContentID(image): re-sending the same photo addresses the same
// item. An id used twice in one call fails the later inputs with ErrDuplicateID. Duplicate
// detection sees only items stored before the call, not other inputs of the same call. A
// duplicate check that fails (the finder's error) fails the call under DuplicateReject and
// DuplicateMerge, so no photo is stored as new because its duplicate could not be looked for;
// under DuplicateAllow the photo is stored without a duplicate report.
package ingest
