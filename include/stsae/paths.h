// paths.h — file-system paths for the stages that read lists and write trees
// of files: a relative path resolved against a directory (a CSV's paths
// against the CSV's directory, a deck's outputs under run_dir), the directory
// of a file, and `mkdir -p`.
#ifndef STSAE_PATHS_H
#define STSAE_PATHS_H

#include <stddef.h>

// `path` when it is absolute or `dir` is NULL, empty or "."; else "dir/path".
// malloc'ed.
char *path_join(const char *dir, const char *path);

// The directory part of `file`: "a/b/c.csv" -> "a/b", "c.csv" -> ".", "/c" -> "/".
// malloc'ed.
char *path_dir(const char *file);

// Creates `dir` and its missing parents (mode 0777 before the umask). 0 on
// success; -1 with "DIR: reason" in err.
int path_mkdirs(const char *dir, char *err, size_t errcap);

#endif
