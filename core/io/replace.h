/* Private to core/io: replacing a file atomically, as editors and SQLite do.
 *
 *   lt__replace rp;
 *   int err = lt__replace_begin(&rp, path, &what);   write to rp.fd ...
 *   err = lt__replace_commit(&rp, &what);
 *   lt__replace_end(&rp);                            always, once begun
 *
 * begin follows the symbolic links of `path` to the file they name (the
 * target), removes stale temporaries of that target, and creates a new
 * temporary beside the target, with the target's mode and (where the system
 * permits) owner. commit flushes it to disk and renames it onto the target,
 * so a reader sees the old file or the new one, never half of either. end
 * removes the temporary unless it was committed. Each returns 0, or an errno
 * value with *what naming the step that failed. */
#ifndef LATTICE_IO_REPLACE_H
#define LATTICE_IO_REPLACE_H

/* Symbolic links followed before giving up with ELOOP, as Linux does. */
#define LT_REPLACE_MAX_LINKS 40

typedef struct lt__replace {
  char *target; /* path with its links followed */
  char *tmp;    /* the temporary file, NULL once renamed or removed */
  int fd;       /* open on tmp for writing, holding its lock; -1 when closed */
} lt__replace;

int lt__replace_begin(lt__replace *rp, const char *path, const char **what);
int lt__replace_commit(lt__replace *rp, const char **what);
void lt__replace_end(lt__replace *rp);

#endif
