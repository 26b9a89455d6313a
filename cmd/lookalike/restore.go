package main

import (
	"context"
	"fmt"
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
	if err := index.CheckFile(file); err != nil {
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
