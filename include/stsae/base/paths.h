// paths.h — file-system paths for the stages that read lists and write trees
// of files: a whole file read, a relative path resolved against a directory (a CSV's paths
// against the CSV's directory, a deck's outputs under run_dir), the directory
// of a file, `mkdir -p`, and text files written under a temporary name, every
// return checked (a full disk shows at fflush, fsync or fclose).
#ifndef STSAE_PATHS_H
#define STSAE_PATHS_H

#include <stddef.h>
#include <stdio.h>

// The whole file, malloc'ed and NUL-terminated, its length in *len (len
// may be NULL); NULL with "FILE: cannot open|read: reason" in err.
char *path_read_all(const char *path, size_t *len, char *err, size_t cap);

// `path` when it is absolute or `dir` is NULL, empty or "."; else "dir/path".
// malloc'ed.
char *path_join(const char *dir, const char *path);

// The directory part of `file`: "a/b/c.csv" -> "a/b", "c.csv" -> ".", "/c" -> "/".
// malloc'ed.
char *path_dir(const char *file);

// A text file written atomically: path_tmp_open opens "<path>.tmp" (its name
// in tmp, cap bytes) for writing, or returns NULL with "TMP: cannot create:
// reason" in err; path_tmp_commit checks that every write went through
// (ferror), flushes, fsyncs and closes it, renames it to path and fsyncs the
// directory: 0, or -1 with "FILE: what: reason" in err and the temporary
// removed. So a file under its final name is whole and on disk.
FILE *path_tmp_open(const char *path, char *tmp, size_t cap, char *err, size_t errcap);
int path_tmp_commit(FILE *f, const char *tmp, const char *path, char *err, size_t errcap);
// The same, dying with the message (single-process stages: synth).
FILE *path_create_tmp(const char *path, char *tmp, size_t cap);
void path_commit(FILE *f, const char *tmp, const char *path);

// Bytes free for this process on the file system holding `file` (its
// directory must exist; ~0 when unknown). Below PATH_FULL_BYTES a write that
// failed without saying why (stdio's error flag, an MPI-IO error class) is
// named "No space left on device".
#define PATH_FULL_BYTES (1ull << 20)
unsigned long long path_free_bytes(const char *file);

// fsync of a directory (after a rename in it: the rename on disk). 0, or -1
// with errno.
int path_sync_dir(const char *dir);

// Creates `dir` and its missing parents (mode 0777 before the umask). 0 on
// success; -1 with "DIR: reason" in err.
int path_mkdirs(const char *dir, char *err, size_t errcap);

// Removes `dir` and everything under it (rm -r; symbolic links removed, not
// followed); nothing there is success. 0, or -1 with "DIR: reason" in err.
int path_remove_tree(const char *dir, char *err, size_t errcap);

// A directory written whole under a temporary name takes dir's place: the old
// dir (if any) is moved to DIR.old, tmp renamed to dir, the parent synced,
// DIR.old removed. Readers see the old tree or the new one, never a mix. 0,
// or -1 with the reason in err (the old dir put back where it can be).
int path_replace_dir(const char *tmp, const char *dir, char *err, size_t errcap);

#endif
