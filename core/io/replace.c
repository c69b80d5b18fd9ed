/* Atomic replacement of a file (replace.h).
 *
 * The temporary file beside the target is named
 *     .lt-<16 hex: FNV-1a hash of the target's name>-<8 hex: pid><4 hex: k>.tmp
 * 37 bytes whatever the target is called, so a target whose name is near the
 * 255-byte limit can still be saved; the hash ties the temporary to its target
 * and the pid and k (tried upwards with O_EXCL) keep concurrent saves apart.
 *
 * Stale temporaries (left by a writer killed mid-save) are found by that name
 * and judged by a lock, not by the pid: the writer holds flock(LOCK_EX) on its
 * temporary from creation to rename, and the kernel drops the lock however
 * the writer dies. A temporary whose lock we can take has no writer, so it is
 * removed. kill(pid, 0) would be wrong for a writer in another pid namespace
 * (a container sharing the directory) or on another NFS client (its pid means
 * nothing here), and after the pid is reused; flock works across namespaces
 * and, on Linux, across NFS clients (it becomes a lock on the server). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "io/replace.h"

#define TMP_PREFIX    ".lt-"
#define TMP_SUFFIX    ".tmp"
#define TMP_TAG_LEN   (sizeof TMP_PREFIX - 1 + 16 + 1) /* ".lt-<hash>-" */
#define TMP_NAME_LEN  (TMP_TAG_LEN + 12 + sizeof TMP_SUFFIX - 1)
#define TMP_MAX_TRIES 1000

/* The text of the symbolic link at `path` (malloc'd), or NULL with errno. */
static char *read_link(const char *path) {
  for (size_t n = 256;; n *= 2) {
    char *buf = malloc(n);
    if (!buf) return NULL;
    ssize_t len = readlink(path, buf, n);
    if (len >= 0 && (size_t)len < n) {
      buf[len] = '\0';
      return buf;
    }
    free(buf);
    if (len < 0) return NULL;
  }
}

/* Length of the directory part of `path`, its last '/' included. */
static size_t dir_len(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? (size_t)(slash - path + 1) : 0;
}

/* `path` with the links of its last component followed as open() follows
 * them: a link's relative text counts from the link's directory, and a
 * dangling link gives the path it names (which the save then creates). The
 * directories on the way are left to the kernel: the temporary goes in the
 * target's directory, so the rename never crosses a file system. *st gets
 * the target's lstat, or st_mode 0 when nothing is there. */
static char *follow_links(const char *path, struct stat *st) {
  char *p = strdup(path);
  for (int hops = 0; p; hops++) {
    if (lstat(p, st) != 0) {
      memset(st, 0, sizeof *st); /* missing, or an error that creating it will report */
      return p;
    }
    if (!S_ISLNK(st->st_mode)) return p;
    char *link = hops < LT_REPLACE_MAX_LINKS ? read_link(p) : NULL;
    if (!link) {
      if (hops >= LT_REPLACE_MAX_LINKS) errno = ELOOP;
      free(p);
      return NULL;
    }
    size_t d = link[0] == '/' ? 0 : dir_len(p), n = strlen(link);
    char *next = malloc(d + n + 1);
    if (next) {
      memcpy(next, p, d);
      memcpy(next + d, link, n + 1);
    }
    free(link);
    free(p);
    p = next;
  }
  return NULL;
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (; *s; s++) h = (h ^ (unsigned char)*s) * UINT64_C(0x100000001b3);
  return h;
}

/* Removes the temporary at `path` if no writer holds its lock. It must still
 * be the file we locked when it is unlinked: a writer may have renamed it
 * onto its target meanwhile (then the name is gone, or is someone's new
 * temporary). */
static void remove_if_stale(const char *path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  struct stat held, named;
  if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &held) == 0 && S_ISREG(held.st_mode) && lstat(path, &named) == 0 &&
      held.st_dev == named.st_dev && held.st_ino == named.st_ino)
    unlink(path);
  close(fd);
}

/* tmp holds the directory part and room for a name: each entry of that
 * directory named like a temporary of this target (same tag) is checked.
 * Best effort: an unreadable directory is simply not cleaned. */
static void remove_stale(char *tmp, size_t dlen, const char *tag) {
  char dir[2] = ".";
  if (dlen) tmp[dlen] = '\0';
  DIR *d = opendir(dlen ? tmp : dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    size_t n = strlen(e->d_name);
    if (n != TMP_NAME_LEN || memcmp(e->d_name, tag, TMP_TAG_LEN) != 0 ||
        memcmp(e->d_name + n - (sizeof TMP_SUFFIX - 1), TMP_SUFFIX, sizeof TMP_SUFFIX - 1) != 0)
      continue;
    memcpy(tmp + dlen, e->d_name, n + 1);
    remove_if_stale(tmp);
  }
  closedir(d);
}

/* Gives the temporary the mode and owner of the file it replaces. The owner
 * first: chown clears set-user-ID bits. Failures are ignored, as editors do:
 * only root may give a file away, and the temporary's own mode (0600 while
 * a file exists) is the safe side. */
static void copy_mode(int fd, const struct stat *old) {
  int owner = fchown(fd, old->st_uid, old->st_gid) == 0 || fchown(fd, (uid_t)-1, old->st_gid) == 0;
  int mode = fchmod(fd, old->st_mode & 07777) == 0;
  (void)owner; /* not permitted: the temporary keeps our user, or our group too */
  (void)mode;  /* a file system without modes */
}

/* Creates tmp = <dir>/<TMP_PREFIX><hash>-<pid><k><TMP_SUFFIX>, locked. */
static int create_temp(lt__replace *rp, size_t dlen, const char *tag, const struct stat *old) {
  int existing = S_ISREG(old->st_mode);
  unsigned long pid = (unsigned long)getpid() & 0xffffffffUL;
  for (int k = 0; k < TMP_MAX_TRIES; k++) {
    snprintf(rp->tmp + dlen, TMP_NAME_LEN + 1, "%s%08lx%04x%s", tag, pid, (unsigned)k, TMP_SUFFIX);
    /* 0600 until it has the old file's mode, so it never shows more than that */
    int fd = open(rp->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, existing ? 0600 : 0666);
    if (fd < 0 && errno == EEXIST) continue;
    if (fd < 0) return errno;
    /* A cleaner may have opened it before we locked it: then it is, or will
     * be, unlinked, and we take another name. A file system without locks
     * (ENOLCK) has no cleaners either: remove_if_stale needs the lock. */
    struct stat st;
    int busy = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    if (busy || fstat(fd, &st) != 0 || st.st_nlink == 0) {
      close(fd);
      continue;
    }
    if (existing) copy_mode(fd, old);
    rp->fd = fd;
    return 0;
  }
  return EEXIST;
}

int lt__replace_begin(lt__replace *rp, const char *path, const char **what) {
  *rp = (lt__replace){.fd = -1};
  struct stat old;
  *what = "cannot follow its symbolic links";
  rp->target = follow_links(path, &old);
  if (!rp->target) return errno;
  size_t dlen = dir_len(rp->target);
  char tag[TMP_TAG_LEN + 1];
  snprintf(tag, sizeof tag, "%s%016" PRIx64 "-", TMP_PREFIX, fnv1a(rp->target + dlen));
  *what = "cannot create a temporary file next to it";
  rp->tmp = malloc(dlen + TMP_NAME_LEN + 1);
  if (!rp->tmp) return ENOMEM;
  memcpy(rp->tmp, rp->target, dlen);
  remove_stale(rp->tmp, dlen, tag);
  int err = create_temp(rp, dlen, tag, &old);
  if (err) {
    free(rp->tmp);
    rp->tmp = NULL; /* nothing to remove */
  }
  return err;
}

/* Makes the rename itself durable; failure here is not worth an error. */
static void sync_dir(const char *target) {
  size_t dlen = dir_len(target);
  char *dir = dlen ? strndup(target, dlen) : strdup(".");
  int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  free(dir);
}

int lt__replace_commit(lt__replace *rp, const char **what) {
  *what = "fsync failed";
  if (fsync(rp->fd) != 0) return errno;
  *what = "cannot rename the temporary file onto it";
  if (rename(rp->tmp, rp->target) != 0) return errno;
  free(rp->tmp);
  rp->tmp = NULL;
  sync_dir(rp->target);
  return 0;
}

void lt__replace_end(lt__replace *rp) {
  if (rp->tmp) unlink(rp->tmp); /* before close: unlocked, a cleaner could take it */
  if (rp->fd >= 0) close(rp->fd);
  free(rp->tmp);
  free(rp->target);
  *rp = (lt__replace){.fd = -1};
}
