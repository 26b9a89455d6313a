package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/lookalike/lookalike/index"
)

// runRestore replaces the data file with a backup taken by GET /v1/admin/backup. The backup is
// verified (opened and consistency-checked) in a scratch folder first, and the current file is kept
// beside it, so a bad backup never costs the data it was meant to replace.
func runRestore(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "restore")
	cf := addCatalogFlags(fs, false)
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("%w: expected one backup FILE", errUsage)
	}
	cfg, err := env.loadConfig()
	if err != nil {
		return err
	}
	cf.apply(&cfg)

	scratch, err := os.MkdirTemp(filepath.Dir(filepath.Clean(cfg.Data.Dir)), ".restore-*")
	if err != nil {
		return fmt.Errorf("%w", err)
	}
	defer os.RemoveAll(scratch)
	staged := filepath.Join(scratch, index.FileName)
	if err := copyFile(rest[0], staged); err != nil {
		return fmt.Errorf("copy backup: %w", err)
	}
	infos, err := verifyBackup(scratch, staged, indexOptions(cfg, env))
	if err != nil {
		return fmt.Errorf("%s is not a usable backup: %w", rest[0], err)
	}

	if err := os.MkdirAll(cfg.Data.Dir, 0o755); err != nil {
		return fmt.Errorf("%w", err)
	}
	target := filepath.Join(cfg.Data.Dir, index.FileName)
	// Holding the live file open with bbolt's lock proves no server is using it.
	if _, err := os.Stat(target); err == nil {
		live, err := index.Open(cfg.Data.Dir, indexOptions(cfg, env))
		if err != nil {
			return fmt.Errorf("data directory %s is in use or unreadable (stop the server first): %w", cfg.Data.Dir, err)
		}
		live.Close()
		kept := target + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(target, kept); err != nil {
			return fmt.Errorf("keep current data: %w", err)
		}
		fmt.Fprintf(env.stdout, "kept the previous data file as %s\n", kept)
	}
	if err := os.Rename(staged, target); err != nil {
		return fmt.Errorf("%w", err)
	}
	for _, c := range infos {
		fmt.Fprintf(env.stdout, "restored collection %s: %d items\n", c.Name, c.Count)
	}
	return nil
}

// verifyBackup opens a staged backup and runs bbolt's consistency check. A damaged file can make
// bbolt panic or fault on its memory map, so the check runs on its own goroutine with faults turned
// into panics, and a panic becomes an error: a bad backup is refused, never a crash.
func verifyBackup(dir, file string, opts *index.Options) (infos []index.CollectionInfo, err error) {
	if err := checkBoltHeader(file); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		debug.SetPanicOnFault(true)
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("damaged data file: %v", r)
			}
		}()
		db, openErr := index.Open(dir, opts)
		if openErr != nil {
			err = openErr
			return
		}
		checkErr := db.Check()
		infos = db.Collections()
		if closeErr := db.Close(); checkErr == nil {
			checkErr = closeErr
		}
		if checkErr != nil {
			err = fmt.Errorf("consistency check: %w", checkErr)
		}
	}()
	<-done
	return infos, err
}

// checkBoltHeader reads the two meta pages the way bbolt does (magic, version, checksum) and
// checks the file holds every page they claim, before bbolt maps it: an empty or cut-off file
// would otherwise be opened as a new database or fault inside the mapping.
func checkBoltHeader(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	const pageHeader, metaLen = 16, 64
	buf := make([]byte, pageHeader+metaLen)
	valid := 0
	var pageSize uint32
	var highWater uint64
	for i := int64(0); i < 2; i++ {
		// The first meta tells the page size; the second sits one page further.
		off := i * int64(pageSize)
		if i == 1 && pageSize == 0 {
			break
		}
		if _, err := f.ReadAt(buf, off); err != nil {
			continue
		}
		meta := buf[pageHeader:]
		magic, version := binary.LittleEndian.Uint32(meta[0:]), binary.LittleEndian.Uint32(meta[4:])
		h := fnv.New64a()
		h.Write(meta[:56])
		if magic != 0xED0CDAED || version != 2 || h.Sum64() != binary.LittleEndian.Uint64(meta[56:]) {
			if i == 0 {
				pageSize = uint32(os.Getpagesize())
			}
			continue
		}
		valid++
		if i == 0 {
			pageSize = binary.LittleEndian.Uint32(meta[8:])
		}
		highWater = max(highWater, binary.LittleEndian.Uint64(meta[40:]))
	}
	switch {
	case valid == 0:
		return errors.New("not a Lookalike data file (no valid bbolt meta page)")
	case pageSize == 0 || highWater*uint64(pageSize) > uint64(st.Size()):
		return fmt.Errorf("truncated: the file is %d bytes, its meta page claims %d pages of %d bytes", st.Size(), highWater, pageSize)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
