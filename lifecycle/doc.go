// Package lifecycle rebuilds a collection with another model without downtime: it builds the next
// generation (c@n+1) in the background from the live items, keeps it current with every write made
// meanwhile (the mirror, fed by index's change tracking), switches the alias to it and back, and
// compares the two generations before a switch. docs/lifecycle.md has the states and what is durable
// when.
//
// The Manager owns one goroutine per running job; Start resumes the jobs persisted in the data file
// and Close (through the context given to Start) stops them. Jobs keep their state in index's
// lifecycle bucket, so a kill -9 resumes from the last copied batch without losing or duplicating
// items.
//
// # Caveats
//
// Items are re-embedded from their stored source rendition when the Sources hook provides one, else
// from the stored thumbnail (counted in Job.FromThumbnail): vectors made from a thumbnail are close
// to, but not the same as, those made from the original photo. Items stored without a thumbnail
// (vectors sent directly) cannot be re-embedded and are counted in Job.Skipped.
package lifecycle
