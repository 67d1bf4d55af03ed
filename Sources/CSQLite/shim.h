#ifndef PRISM_CSQLITE_SHIM_H
#define PRISM_CSQLITE_SHIM_H
/* Parameters are bound with a nil destructor (SQLITE_STATIC) from a buffer the caller keeps until
   the statement has stepped (SQLiteDatabase.BoundBytes). */
#include <sqlite3.h>
#endif
