#ifndef PRISM_CSQLITE_SHIM_H
#define PRISM_CSQLITE_SHIM_H
#include <sqlite3.h>

/* SQLITE_TRANSIENT is a cast macro Swift cannot import: bind calls copy their argument. */
static inline int prism_sqlite_bind_text(sqlite3_stmt *statement, int index, const char *text, int length) {
    return sqlite3_bind_text(statement, index, text, length, SQLITE_TRANSIENT);
}
static inline int prism_sqlite_bind_blob(sqlite3_stmt *statement, int index, const void *data, int length) {
    return sqlite3_bind_blob(statement, index, data, length, SQLITE_TRANSIENT);
}
#endif
