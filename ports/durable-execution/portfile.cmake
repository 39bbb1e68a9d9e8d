# Overlay port: until the project is published, the source is the repository this port lives in.
#   vcpkg install durable-execution --overlay-ports=<repo>/ports
#   vcpkg install "durable-execution[postgres]" --overlay-ports=<repo>/ports
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
  FEATURES
    sqlite   DE_WITH_SQLITE
    postgres DE_WITH_POSTGRES
)

# Developer mode (-Werror, header checks) is for the project's own CI, never for packagers.
vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    ${FEATURE_OPTIONS}
    -DBUILD_TESTING=OFF
    -DDE_BUILD_EXAMPLES=OFF
    -DDE_BUILD_BENCH=OFF
    -DDE_INSTALL=ON
    -DDE_DEVELOPER_MODE=OFF
)

vcpkg_cmake_install()
vcpkg_cmake_config_fixup(PACKAGE_NAME durable_execution CONFIG_PATH lib/cmake/durable_execution)

file(REMOVE_RECURSE
  "${CURRENT_PACKAGES_DIR}/debug/include"
  "${CURRENT_PACKAGES_DIR}/debug/share"
)

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
