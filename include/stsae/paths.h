// paths.h — file-system paths for the stages that read lists and write trees
// of files: a relative path resolved against a directory (a CSV's paths
// against the CSV's directory, a deck's outputs under run_dir), the directory
// of a file, `mkdir -p`, and text files written under a temporary name.
#ifndef STSAE_PATHS_H
#define STSAE_PATHS_H

#include <stddef.h>
#include <stdio.h>

// `path` when it is absolute or `dir` is NULL, empty or "."; else "dir/path".
// malloc'ed.
char *path_join(const char *dir, const char *path);

// The directory part of `file`: "a/b/c.csv" -> "a/b", "c.csv" -> ".", "/c" -> "/".
// malloc'ed.
char *path_dir(const char *file);

// A text file written atomically: path_create_tmp opens "<path>.tmp" (its name
// in tmp, cap bytes) for writing; path_commit flushes it to disk, closes it and
// renames it to path. Both die naming the file on failure.
FILE *path_create_tmp(const char *path, char *tmp, size_t cap);
void path_commit(FILE *f, const char *tmp, const char *path);

// Creates `dir` and its missing parents (mode 0777 before the umask). 0 on
// success; -1 with "DIR: reason" in err.
int path_mkdirs(const char *dir, char *err, size_t errcap);

#endif
