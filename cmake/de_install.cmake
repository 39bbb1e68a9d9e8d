# Install rules and the CMake package config (STYLE.md §2, "Package config").
#
# Layout under the prefix:
#   include/durable_execution/...                       headers (FILE_SETs of each target)
#   lib/libdurable_execution*.{a,so}                    libraries
#   lib/cmake/durable_execution/                        config, version file, one export per target
#     durable_execution-config.cmake
#     durable_execution-config-version.cmake
#     durable_execution-targets.cmake                   core (always)
#     durable_execution-<component>-targets.cmake       one per component (sqlite, postgres,
#                                                       testing: the kit of src/testing)
#
# Components (backends and the testing kit) register their targets with
#   set_property(GLOBAL APPEND PROPERTY DE_COMPONENT_TARGETS <target>)
# and the component name is the target's EXPORT_NAME. One export set per component lets a
# consumer ask for only the backends it uses, and lets an install without a backend still load.

set(DE_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/durable_execution"
    CACHE STRING "Where the CMake package config of durable_execution is installed")
mark_as_advanced(DE_INSTALL_CMAKEDIR)

# Installs one target with its header file set and its own export file.
function(de_install_target target export_file)
  install(TARGETS ${target}
    EXPORT ${export_file}
    RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
    LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    FILE_SET HEADERS DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
  install(EXPORT ${export_file}
    NAMESPACE durable_execution::
    FILE ${export_file}.cmake
    DESTINATION "${DE_INSTALL_CMAKEDIR}")
endfunction()

de_install_target(durable_execution durable_execution-targets)

# ---- components (storage backends, testing kit) --------------------------------------------
get_property(_de_component_targets GLOBAL PROPERTY DE_COMPONENT_TARGETS)
list(REMOVE_DUPLICATES _de_component_targets)
set(DE_INSTALLED_COMPONENTS "")
foreach(_de_target IN LISTS _de_component_targets)
  if(NOT TARGET ${_de_target})
    message(FATAL_ERROR "DE_COMPONENT_TARGETS names '${_de_target}', which is not a target")
  endif()
  get_target_property(_de_component ${_de_target} EXPORT_NAME)
  if(NOT _de_component)
    set(_de_component ${_de_target})
  endif()
  de_install_target(${_de_target} durable_execution-${_de_component}-targets)
  list(APPEND DE_INSTALLED_COMPONENTS ${_de_component})
endforeach()

# The postgres component recreates its pqxx target the same way the build did.
if("postgres" IN_LIST DE_INSTALLED_COMPONENTS
   AND EXISTS "${PROJECT_SOURCE_DIR}/cmake/de_find_pqxx.cmake")
  install(FILES "${PROJECT_SOURCE_DIR}/cmake/de_find_pqxx.cmake"
          DESTINATION "${DE_INSTALL_CMAKEDIR}")
endif()

# ---- config and version files --------------------------------------------------------------
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/durable_execution-config.cmake.in"
  "${PROJECT_BINARY_DIR}/durable_execution-config.cmake"
  INSTALL_DESTINATION "${DE_INSTALL_CMAKEDIR}")
# Before 1.0 a minor release may break the API, so only the same major.minor is compatible.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/durable_execution-config-version.cmake"
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/durable_execution-config.cmake"
  "${PROJECT_BINARY_DIR}/durable_execution-config-version.cmake"
  DESTINATION "${DE_INSTALL_CMAKEDIR}")

install(FILES "${PROJECT_SOURCE_DIR}/LICENSE" "${PROJECT_SOURCE_DIR}/README.md"
        DESTINATION "${CMAKE_INSTALL_DOCDIR}" OPTIONAL)
