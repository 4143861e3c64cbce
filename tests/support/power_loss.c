/*
 * An LD_PRELOAD layer for the power-loss tests (tests/src/power_loss.rs).
 *
 * It appends to the file named by $POWERLOSS_LOG one line per event that decides what a power
 * cut keeps:
 *
 *   S <size> <path>   fsync or fdatasync of a regular file succeeded; <size> is the file's
 *                     size when the call began, which the call made durable
 *   R <old> <new>     rename(2) succeeded
 *   U <path>          unlink(2) succeeded
 *
 * (fields separated by tabs, paths absolute). After killing the process, the test cuts every
 * file back to its last durable size, and a file never synced back to nothing: what a power
 * cut leaves of data that was written but not synced. Directory entries are taken as durable.
 *
 * $POWERLOSS_IGNORE_SUFFIX, when set, makes syncs of paths ending with it count for nothing
 * (the negative control: a store whose WAL is never synced must lose acknowledged writes).
 *
 * The process aborts when the log cannot be opened, so that a test never passes without it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int log_fd(void) {
    static int fd = -2;
    int current = __atomic_load_n(&fd, __ATOMIC_ACQUIRE);
    if (current != -2) {
        return current;
    }
    const char *path = getenv("POWERLOSS_LOG");
    int opened = path == NULL ? -1
        : (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (opened < 0) {
        static const char msg[] = "power_loss.so: POWERLOSS_LOG is unset or cannot be opened\n";
        (void)!write(2, msg, sizeof msg - 1);
        abort();
    }
    int expected = -2;
    if (!__atomic_compare_exchange_n(&fd, &expected, opened, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        syscall(SYS_close, opened);
        return expected;
    }
    return opened;
}

/* One line, written with one write(2) on an O_APPEND descriptor: lines never interleave. */
static void record(const char *kind, long long size, const char *a, const char *b) {
    char line[3 * PATH_MAX + 64];
    int n;
    if (b != NULL) {
        n = snprintf(line, sizeof line, "%s\t%s\t%s\n", kind, a, b);
    } else if (size >= 0) {
        n = snprintf(line, sizeof line, "%s\t%lld\t%s\n", kind, size, a);
    } else {
        n = snprintf(line, sizeof line, "%s\t%s\n", kind, a);
    }
    if (n <= 0 || n >= (int)sizeof line) {
        abort();
    }
    if (syscall(SYS_write, log_fd(), line, (size_t)n) != n) {
        abort();
    }
}

/* The absolute path of `path` relative to `dirfd` (AT_FDCWD for the working directory). */
static int absolute(int dirfd, const char *path, char *out, size_t len) {
    char base[PATH_MAX];
    if (path[0] == '/') {
        return snprintf(out, len, "%s", path) < (int)len ? 0 : -1;
    }
    if (dirfd == AT_FDCWD) {
        if (getcwd(base, sizeof base) == NULL) {
            return -1;
        }
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, base, sizeof base - 1);
        if (n < 0) {
            return -1;
        }
        base[n] = '\0';
    }
    return snprintf(out, len, "%s/%s", base, path) < (int)len ? 0 : -1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return lx <= ls && strcmp(s + ls - lx, suffix) == 0;
}

typedef int (*sync_fn)(int);

static int synced(const char *name, int fd) {
    static sync_fn real[2];
    int which = strcmp(name, "fsync") == 0 ? 0 : 1;
    if (real[which] == NULL) {
        real[which] = (sync_fn)dlsym(RTLD_NEXT, name);
    }
    struct stat st;
    int regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    int rc = real[which](fd);
    if (rc != 0 || !regular) {
        return rc;
    }
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) {
        return rc;
    }
    path[n] = '\0';
    const char *ignore = getenv("POWERLOSS_IGNORE_SUFFIX");
    if (path[0] != '/' || (ignore != NULL && ignore[0] != '\0' && ends_with(path, ignore))) {
        return rc;
    }
    record("S", (long long)st.st_size, path, NULL);
    return rc;
}

int fsync(int fd) { return synced("fsync", fd); }

int fdatasync(int fd) { return synced("fdatasync", fd); }

static void renamed(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    char a[PATH_MAX], b[PATH_MAX];
    if (absolute(olddirfd, oldpath, a, sizeof a) == 0 &&
        absolute(newdirfd, newpath, b, sizeof b) == 0) {
        record("R", -1, a, b);
    }
}

int rename(const char *oldpath, const char *newpath) {
    static int (*real)(const char *, const char *);
    if (real == NULL) {
        real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    }
    int rc = real(oldpath, newpath);
    if (rc == 0) {
        renamed(AT_FDCWD, oldpath, AT_FDCWD, newpath);
    }
    return rc;
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    static int (*real)(int, const char *, int, const char *);
    if (real == NULL) {
        real = (int (*)(int, const char *, int, const char *))dlsym(RTLD_NEXT, "renameat");
    }
    int rc = real(olddirfd, oldpath, newdirfd, newpath);
    if (rc == 0) {
        renamed(olddirfd, oldpath, newdirfd, newpath);
    }
    return rc;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
              unsigned int flags) {
    static int (*real)(int, const char *, int, const char *, unsigned int);
    if (real == NULL) {
        real = (int (*)(int, const char *, int, const char *, unsigned int))dlsym(RTLD_NEXT,
                                                                                  "renameat2");
    }
    int rc = real(olddirfd, oldpath, newdirfd, newpath, flags);
    if (rc == 0) {
        renamed(olddirfd, oldpath, newdirfd, newpath);
    }
    return rc;
}

static void unlinked(int dirfd, const char *path) {
    char a[PATH_MAX];
    if (absolute(dirfd, path, a, sizeof a) == 0) {
        record("U", -1, a, NULL);
    }
}

int unlink(const char *path) {
    static int (*real)(const char *);
    if (real == NULL) {
        real = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    }
    int rc = real(path);
    if (rc == 0) {
        unlinked(AT_FDCWD, path);
    }
    return rc;
}

int unlinkat(int dirfd, const char *path, int flags) {
    static int (*real)(int, const char *, int);
    if (real == NULL) {
        real = (int (*)(int, const char *, int))dlsym(RTLD_NEXT, "unlinkat");
    }
    int rc = real(dirfd, path, flags);
    if (rc == 0) {
        unlinked(dirfd, path);
    }
    return rc;
}
