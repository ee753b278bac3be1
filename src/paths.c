// paths.c — path joining, directory of a file, mkdir -p, atomic text files (paths.h).
#define _POSIX_C_SOURCE 200809L // mkdir, stat, fsync, fileno
#include "stsae/paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stsae/common.h"

char *path_join(const char *dir, const char *path) {
    size_t np = strlen(path);
    if (path[0] == '/' || !dir || !dir[0] || !strcmp(dir, ".")) {
        char *s = xmalloc(np + 1);
        memcpy(s, path, np + 1);
        return s;
    }
    size_t nd = strlen(dir);
    while (nd > 1 && dir[nd - 1] == '/') nd--;
    char *s = xmalloc(nd + 1 + np + 1);
    memcpy(s, dir, nd);
    size_t k = nd;
    if (dir[nd - 1] != '/') s[k++] = '/';
    memcpy(s + k, path, np + 1);
    return s;
}

char *path_dir(const char *file) {
    const char *slash = strrchr(file, '/');
    if (!slash) return path_join(NULL, ".");
    size_t n = slash == file ? 1 : (size_t)(slash - file);
    char *s = xmalloc(n + 1);
    memcpy(s, file, n);
    s[n] = 0;
    return s;
}

int path_mkdirs(const char *dir, char *err, size_t errcap) {
    size_t n = strlen(dir);
    char *p = xmalloc(n + 1);
    memcpy(p, dir, n + 1);
    int rc = 0;
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            snprintf(err, errcap, "%s: cannot create directory: %s", p, strerror(errno));
            rc = -1;
        } else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errcap, "%s: exists and is not a directory", p);
            rc = -1;
        }
        p[i] = c;
    }
    free(p);
    return rc;
}

FILE *path_create_tmp(const char *path, char *tmp, size_t cap) {
    snprintf(tmp, cap, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) die("%s: cannot create", tmp);
    return f;
}

void path_commit(FILE *f, const char *tmp, const char *path) {
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0) die("%s: cannot write", tmp);
    if (rename(tmp, path) != 0) die("%s: cannot rename to %s", tmp, path);
}
