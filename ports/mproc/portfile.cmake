# vcpkg overlay port that builds the mproc checkout it lives in (ports/mproc/../..): no download step.
#   vcpkg install mproc --overlay-ports=<checkout>/ports [--no-binarycaching]
# vcpkg's ABI hash covers the port files, not this source tree, so use --no-binarycaching (or
# classic mode's --editable) after changing the sources. A registry port would use vcpkg_from_github
# with a REF and SHA512 instead of the local SOURCE_PATH.
#
# The install layout this relies on (CMake package in lib/cmake/mproc, pkg-config file in
# lib/pkgconfig, headers in include/, DLLs in bin/) is checked by tests/consumer/run.sh.
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

# vcpkg_cmake_configure passes BUILD_SHARED_LIBS from VCPKG_LIBRARY_LINKAGE; the generated
# mproc_export.h bakes the linkage in, so consumers need no -D flag either way.
# Feature mpi: mproc::mpi (the Pool over MPI ranks); without it the library is built without MPI.
vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS FEATURES mpi MPROC_WITH_MPI)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    ${FEATURE_OPTIONS}
    -DMPROC_BUILD_TESTS=OFF
    -DMPROC_BUILD_EXAMPLES=OFF
    -DMPROC_BUILD_BENCH=OFF
    -DMPROC_INSTALL=ON
    -DMPROC_WITH_LIBCRYPTO=ON   # POSIX: HMAC for authkeys from the openssl port (vcpkg.json); Windows: BCrypt
)
vcpkg_cmake_install()
vcpkg_copy_pdbs()
# mproc installs its CMake package to lib/cmake/mproc; vcpkg wants it in share/mproc
vcpkg_cmake_config_fixup(CONFIG_PATH lib/cmake/mproc)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug/include" "${CURRENT_PACKAGES_DIR}/debug/share")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
configure_file("${CMAKE_CURRENT_LIST_DIR}/usage" "${CURRENT_PACKAGES_DIR}/share/${PORT}/usage" COPYONLY)
