/* Whole directories and the operations around them (dirs.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "io/dirs.h"
#include "io/replace.h"

#define TMPDIR_PREFIX    ".lt-"
#define TMPDIR_SUFFIX    ".tmpdir"
#define TMPDIR_MAX_TRIES 1000
#define MAX_DEPTH        64

/* "<a>/<b>", malloc'd, or NULL. */
static char *join(const char *a, const char *b) {
  size_t na = strlen(a), nb = strlen(b);
  char *p = malloc(na + 1 + nb + 1);
  if (!p) return NULL;
  memcpy(p, a, na);
  p[na] = '/';
  memcpy(p + na + 1, b, nb + 1);
  return p;
}

static int is_tmpdir_name(const char *name) {
  size_t n = strlen(name), np = sizeof TMPDIR_PREFIX - 1, ns = sizeof TMPDIR_SUFFIX - 1;
  return n > np + ns && memcmp(name, TMPDIR_PREFIX, np) == 0 && memcmp(name + n - ns, TMPDIR_SUFFIX, ns) == 0;
}

/* Empties the directory open as fd (which this closes), `depth` levels down. */
static int empty_dir(int fd, int depth) {
  if (depth > MAX_DEPTH) {
    close(fd);
    return ELOOP;
  }
  DIR *d = fdopendir(fd);
  if (!d) {
    int err = errno;
    close(fd);
    return err;
  }
  int err = 0;
  for (struct dirent *e; !err && (e = readdir(d));) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (unlinkat(fd, e->d_name, 0) == 0) continue;
    if (errno != EISDIR && errno != EPERM) {
      err = errno;
      continue;
    }
    int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    err = sub < 0 ? errno : empty_dir(sub, depth + 1);
    if (!err && unlinkat(fd, e->d_name, AT_REMOVEDIR) != 0) err = errno;
  }
  closedir(d);
  return err;
}

int lt__remove_tree(const char *path, const char **what) {
  *what = "cannot remove it";
  if (unlink(path) == 0) return 0;
  if (errno != EISDIR && errno != EPERM) return errno;
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = empty_dir(fd, 1);
  if (!err && rmdir(path) != 0) err = errno;
  return err;
}

/* mkdir for one prefix: fine when a directory is already there (EEXIST, or
 * EACCES/EROFS on one we may not create but which exists). */
static int make_one(const char *p) {
  if (mkdir(p, 0777) == 0) return 0;
  int err = errno;
  struct stat st;
  if (stat(p, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  return err;
}

int lt__mkdirs(const char *path, const char **what) {
  *what = "cannot create the directory";
  if (!*path) return ENOENT;
  char *p = strdup(path);
  if (!p) return ENOMEM;
  int err = 0;
  for (char *s = p + 1; !err; s++) { /* each prefix ending before a '/', then the whole path */
    if (*s != '/' && *s != '\0') continue;
    char c = *s;
    *s = '\0';
    err = make_one(p);
    *s = c;
    if (c == '\0') break;
  }
  free(p);
  return err;
}

static void sync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

/* Removes the leftover at path if we can take its lock: then no writer holds it. */
static void remove_if_stale(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  const char *what;
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) (void)lt__remove_tree(path, &what);
  close(fd);
}

void lt__sweep_tmpdirs(const char *parent) {
  DIR *d = opendir(parent);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d));) {
    if (!is_tmpdir_name(e->d_name)) continue;
    char *path = join(parent, e->d_name);
    if (path) remove_if_stale(path);
    free(path);
  }
  closedir(d);
}

/* A fresh <parent>/.lt-<name>-<pid><k>.tmpdir, malloc'd; with lock, its
 * fd locked (a cleaner cannot take it), else unlocked (an old directory moved
 * aside, for removal). */
static char *new_tmpdir(const char *parent, const char *name, int lock, int *fd, int *err) {
  unsigned long pid = (unsigned long)getpid() & 0xffffffffUL;
  size_t n = strlen(name) + 40;
  char *base = malloc(n);
  if (!base) {
    *err = ENOMEM;
    return NULL;
  }
  for (int k = 0; k < TMPDIR_MAX_TRIES; k++) {
    snprintf(base, n, "%s%s-%08lx%04x%s", TMPDIR_PREFIX, name, pid, (unsigned)k, TMPDIR_SUFFIX);
    char *path = join(parent, base);
    if (!path) break;
    if (!lock) { /* only the name is wanted: rename() creates it */
      struct stat st;
      if (lstat(path, &st) != 0 && errno == ENOENT) {
        free(base);
        return path;
      }
    } else if (mkdir(path, 0777) == 0) {
      *fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      /* a sweep may have taken it between mkdir and the lock: then try another */
      if (*fd >= 0 && flock(*fd, LOCK_EX | LOCK_NB) == 0 && access(path, F_OK) == 0) {
        free(base);
        return path;
      }
      if (*fd >= 0) close(*fd);
      *fd = -1;
    } else if (errno != EEXIST) {
      *err = errno;
      free(path);
      free(base);
      return NULL;
    }
    free(path);
  }
  free(base);
  *err = EEXIST;
  return NULL;
}

int lt__tmpdir_begin(lt__tmpdir *td, const char *parent, const char *name, const char **what) {
  *td = (lt__tmpdir){.fd = -1};
  *what = "cannot create a temporary directory for it";
  lt__sweep_tmpdirs(parent);
  td->final = join(parent, name);
  if (!td->final) return ENOMEM;
  int err = 0;
  td->path = new_tmpdir(parent, name, 1, &td->fd, &err);
  return td->path ? 0 : err;
}

/* The parent of final, as a path (final always has a '/'). */
static char *parent_of(const char *final) { return strndup(final, (size_t)(strrchr(final, '/') - final)); }

int lt__tmpdir_commit(lt__tmpdir *td, const char **what) {
  *what = "fsync failed";
  if (fsync(td->fd) != 0) return errno;
  char *parent = parent_of(td->final), *aside = NULL;
  if (!parent) return ENOMEM;
  int err = 0;
  struct stat st;
  if (lstat(td->final, &st) == 0) { /* an older directory of that name goes aside, then away */
    const char *slash = strrchr(td->final, '/');
    *what = "cannot move the existing directory aside";
    aside = new_tmpdir(parent, slash + 1, 0, NULL, &err);
    if (aside && rename(td->final, aside) != 0) err = errno;
  }
  if (!err) {
    *what = "cannot rename the temporary directory onto it";
    if (rename(td->path, td->final) != 0) err = errno;
  }
  if (!err) {
    free(td->path);
    td->path = NULL;
    sync_path(parent);
    const char *ignored;
    if (aside) (void)lt__remove_tree(aside, &ignored); /* a failure leaves it to the next sweep */
  }
  free(aside);
  free(parent);
  return err;
}

void lt__tmpdir_end(lt__tmpdir *td) {
  const char *what;
  if (td->path) (void)lt__remove_tree(td->path, &what); /* while we hold the lock */
  if (td->fd >= 0) close(td->fd);
  free(td->path);
  free(td->final);
  *td = (lt__tmpdir){.fd = -1};
}

int lt__write_file(const char *path, const void *data, size_t n, const char **what) {
  lt__replace rp;
  int err = lt__replace_begin(&rp, path, what);
  for (size_t done = 0; !err && done < n;) {
    ssize_t w = write(rp.fd, (const char *)data + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      *what = "write failed";
      err = errno;
    } else {
      done += (size_t)w;
    }
  }
  if (!err) err = lt__replace_commit(&rp, what);
  lt__replace_end(&rp);
  return err;
}
