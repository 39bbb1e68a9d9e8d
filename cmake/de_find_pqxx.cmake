# Finds libpqxx for the PostgreSQL backend (STYLE.md §2) and sets DE_PQXX_TARGET to its target:
#   libpqxx::pqxx       vcpkg's (and upstream's) CMake config, tried first;
#   PkgConfig::libpqxx  Debian's libpqxx-dev, which ships only a pkg-config file.
# Installed next to the package config, so a consumer recreates the same target name as the
# build linked against. Leaves DE_PQXX_TARGET empty when neither is found.
set(DE_PQXX_TARGET "")
if(NOT TARGET libpqxx::pqxx AND NOT TARGET PkgConfig::libpqxx)
  find_package(libpqxx CONFIG QUIET)
  if(NOT TARGET libpqxx::pqxx)
    find_package(PkgConfig QUIET)
    if(PKG_CONFIG_FOUND)
      pkg_check_modules(libpqxx QUIET IMPORTED_TARGET GLOBAL libpqxx)
    endif()
  endif()
endif()
if(TARGET libpqxx::pqxx)
  set(DE_PQXX_TARGET libpqxx::pqxx)
elseif(TARGET PkgConfig::libpqxx)
  set(DE_PQXX_TARGET PkgConfig::libpqxx)
endif()
