#pragma once

// The SQL mapping shared by the SQL backends (src/sqlite, src/postgres; SPEC.md §9), in three
// headers by job: the row layout (sql_columns.hpp), the shapes of updates (sql_update_shape.hpp)
// and the damage-tolerant row reader (sql_row_reader.hpp). This header includes all three for
// sources that use every part. Internal: not installed.

#include "sql/sql_columns.hpp"       // IWYU pragma: export
#include "sql/sql_row_reader.hpp"    // IWYU pragma: export
#include "sql/sql_update_shape.hpp"  // IWYU pragma: export
