// Package edit changes the metadata of stored items without touching their photos or vectors: a
// JSON merge patch (RFC 7386) of one item, and the same patch, or a move to the trash, for the
// items a metadata filter matches, one bounded page per call.
//
// Every write goes through index.Collection.Update (read, decide and write under the collection's
// write lock), so a version precondition, a filter re-check and the patch all see the item as it
// is stored at the moment of the write, and no concurrent edit is lost. Deletions by filter go
// through index.Collection.Trash, so they can be undone (RestoreFromTrash) until the trash is
// purged.
//
// # Caveats
//
//   - Metadata is edited as raw JSON: members the patch does not name keep their exact bytes and
//     their order (a 19-digit EAN stays what it was, where a float64 round trip would change it);
//     new members are appended in the patch's order. A patch value replaces the stored one as
//     written (compacted, never re-encoded).
//   - A bulk call handles at most one page (Selection.Limit, at most MaxBulk items, and the index's
//     scan bound); its Report.NextCursor continues. Items are written one by one: a failure part
//     way leaves the earlier items written, as the report says.
//   - DeleteWhere cannot re-check the filter at the moment of the move: an item edited between
//     the page read and the move to the trash is still moved (and can be restored).
package edit
