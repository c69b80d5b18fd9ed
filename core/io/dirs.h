/* Private to core/io and the binding: directories that must appear whole or
 * not at all (a training checkpoint, a LoRA adapter), and the few directory
 * operations around them.
 *
 *   lt__tmpdir td;
 *   int err = lt__tmpdir_begin(&td, parent, name, &what);  write files under td.path ...
 *   err = lt__tmpdir_commit(&td, &what);
 *   lt__tmpdir_end(&td);                                    always, once begun
 *
 * begin removes the leftovers of writers that died (below), then creates
 * <parent>/.lt-<name>-<8 hex: pid><4 hex: k>.tmpdir and holds flock(LOCK_EX)
 * on it. commit fsyncs it and renames it onto <parent>/<name>: a directory
 * already there is first renamed aside (to another .tmpdir name) and removed
 * after, so a reader finds the old directory or the new one complete (or, if
 * the process dies between the two renames, neither: the old one then waits
 * under its .tmpdir name for the next sweep). The parent is fsynced last.
 * end removes the temporary unless it was committed.
 *
 * Leftovers are judged by the lock, as replace.c judges temporary files: a
 * .lt-*.tmpdir directory whose lock can be taken has no writer, and is
 * removed; one being written elsewhere keeps its lock and stays.
 *
 * Each returns 0, or an errno value with *what naming the step that failed. */
#ifndef LATTICE_IO_DIRS_H
#define LATTICE_IO_DIRS_H

typedef struct lt__tmpdir {
  char *path;  /* the temporary directory; NULL once renamed or removed */
  char *final; /* <parent>/<name> */
  int fd;      /* open on path, holding its lock; -1 when closed */
} lt__tmpdir;

int lt__tmpdir_begin(lt__tmpdir *td, const char *parent, const char *name, const char **what);
int lt__tmpdir_commit(lt__tmpdir *td, const char **what);
void lt__tmpdir_end(lt__tmpdir *td);

/* Removes the .lt-*.tmpdir leftovers in parent that nobody holds a lock on;
 * best effort (an unreadable parent is left as it is). */
void lt__sweep_tmpdirs(const char *parent);

/* Creates path and its missing parents (mode 0777 less the umask); a path
 * that exists as a directory is fine. */
int lt__mkdirs(const char *path, const char **what);
/* Removes path: a file, a symbolic link (not what it names) or a directory
 * with everything in it, at most 64 levels deep. */
int lt__remove_tree(const char *path, const char **what);
/* Writes n bytes as the file at path, atomically (replace.h). */
int lt__write_file(const char *path, const void *data, size_t n, const char **what);

#endif
