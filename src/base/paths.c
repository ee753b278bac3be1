// paths.c — path joining, directory of a file, mkdir -p, rm -r, atomic text
// files and directories (paths.h).
#define _XOPEN_SOURCE 700 // mkdir, stat, fsync, fileno, statvfs (POSIX 2008), nftw (XSI)
#include "stsae/base/paths.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "stsae/base/common.h"

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

FILE *path_tmp_open(const char *path, char *tmp, size_t cap, char *err, size_t errcap) {
    snprintf(tmp, cap, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) snprintf(err, errcap, "%s: cannot create: %s", tmp, strerror(errno));
    return f;
}

int path_sync_dir(const char *dir) {
    const int fd = open(dir, O_RDONLY);
    if (fd < 0) return -1;
    const int rc = fsync(fd), e = errno;
    close(fd);
    errno = e;
    return rc;
}

unsigned long long path_free_bytes(const char *file) {
    char *dir = path_dir(file);
    struct statvfs s;
    unsigned long long n = ~0ull;
    if (statvfs(dir, &s) == 0) n = (unsigned long long)(geteuid() == 0 ? s.f_bfree : s.f_bavail) * s.f_frsize;
    free(dir);
    return n;
}

int path_tmp_commit(FILE *f, const char *tmp, const char *path, char *err, size_t errcap) {
    // a write that failed inside fprintf set the stream's error flag, its
    // errno long gone: a full file system is then the reason to name; the
    // buffered rest shows at fflush, the data at fsync
    const int bad = ferror(f);
    if (bad || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        const int e = bad ? (path_free_bytes(tmp) < PATH_FULL_BYTES ? ENOSPC : 0) : errno;
        snprintf(err, errcap, "%s: cannot write: %s", tmp, e ? strerror(e) : "a write to it failed");
        fclose(f);
        unlink(tmp);
        return -1;
    }
    if (fclose(f) != 0) {
        snprintf(err, errcap, "%s: cannot close: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        snprintf(err, errcap, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    char *dir = path_dir(path);
    const int rc = path_sync_dir(dir);
    if (rc != 0) snprintf(err, errcap, "%s: cannot sync its directory %s to disk: %s", path, dir, strerror(errno));
    free(dir);
    return rc;
}

FILE *path_create_tmp(const char *path, char *tmp, size_t cap) {
    char err[4400];
    FILE *f = path_tmp_open(path, tmp, cap, err, sizeof(err));
    if (!f) die("%s", err);
    return f;
}

void path_commit(FILE *f, const char *tmp, const char *path) {
    char err[8600];
    if (path_tmp_commit(f, tmp, path, err, sizeof(err)) != 0) die("%s", err);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path) == 0 ? 0 : errno;
}

int path_remove_tree(const char *dir, char *err, size_t errcap) {
    struct stat st;
    if (lstat(dir, &st) != 0) return errno == ENOENT ? 0 : (snprintf(err, errcap, "%s: %s", dir, strerror(errno)), -1);
    const int rc = nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0) return snprintf(err, errcap, "%s: cannot remove it: %s", dir, strerror(rc > 0 ? rc : errno)), -1;
    return 0;
}

int path_replace_dir(const char *tmp, const char *dir, char *err, size_t errcap) {
    const size_t n = strlen(dir) + 8;
    char *old = xmalloc(n);
    snprintf(old, n, "%s.old", dir);
    int rc = path_remove_tree(old, err, errcap); // a previous replace that stopped half-way
    struct stat st;
    const int had = rc == 0 && lstat(dir, &st) == 0;
    if (rc == 0 && had && rename(dir, old) != 0)
        rc = -1, snprintf(err, errcap, "%s: cannot rename it to %s: %s", dir, old, strerror(errno));
    if (rc == 0 && rename(tmp, dir) != 0) {
        rc = -1, snprintf(err, errcap, "%s: cannot rename it to %s: %s", tmp, dir, strerror(errno));
        if (had) rename(old, dir); // the previous one back
    }
    if (rc == 0) {
        char *parent = path_dir(dir);
        path_sync_dir(parent);
        free(parent);
        if (had) rc = path_remove_tree(old, err, errcap);
    }
    free(old);
    return rc;
}

char *path_read_all(const char *path, size_t *len, char *err, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        errorf(err, cap, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t n = 0, c = 1 << 16;
    char *buf = xmalloc(c);
    for (size_t r; (r = fread(buf + n, 1, c - n - 1, f)) > 0;) {
        n += r;
        if (c - n - 1 == 0) buf = xrealloc(buf, c *= 2);
    }
    int bad = ferror(f) ? errno : 0;
    fclose(f);
    if (bad) {
        free(buf);
        errorf(err, cap, "%s: cannot read: %s", path, strerror(bad));
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}
