# What `cmake --install build --prefix P` puts under P:
#
#   lib/lua/5.4/lattice/core.so      the Lua C module (LATTICE_INSTALL_CMODDIR)
#   share/lua/5.4/lattice/**.lua     the Lua library (LATTICE_INSTALL_LUADIR)
#   bin/lattice                      the command
#   lib/liblattice_core.so           the C core            lattice::core
#   lib/liblattice_lua.so            the embedding API     lattice::lua
#   include/lattice/*.h              their headers
#   lib/pkgconfig/lattice.pc         pkg-config: lattice (embedding), lattice-core
#   lib/cmake/lattice/               find_package(lattice)
#
# (A LuaRocks build installs the first two itself, into its tree: see
# rocks/lattice-scm-1.rockspec.) Every path below is relative to the prefix, so the
# install can be moved: the libraries and the command find each other through
# $ORIGIN, the Lua files through the library's own location, pkg-config
# through ${pcfiledir}.
include(CMakePackageConfigHelpers)

install(DIRECTORY lua/lattice DESTINATION ${LATTICE_INSTALL_LUADIR})
install(TARGETS lattice_module LIBRARY DESTINATION ${LATTICE_INSTALL_CMODDIR}/lattice)

file(RELATIVE_PATH LIBDIR_FROM_BINDIR ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR} ${LATTICE_ABS_LIBDIR})
set_target_properties(lattice PROPERTIES INSTALL_RPATH "$ORIGIN/${LIBDIR_FROM_BINDIR}")
install(TARGETS lattice RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

set_target_properties(lattice_core PROPERTIES EXPORT_NAME core)
set_target_properties(lattice_lua PROPERTIES EXPORT_NAME lua)
install(TARGETS lattice_core lattice_lua EXPORT latticeTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY core/include/lattice core/lua/include/lattice DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(LATTICE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/lattice)
install(EXPORT latticeTargets NAMESPACE lattice:: DESTINATION ${LATTICE_CMAKE_DIR})
configure_package_config_file(cmake/latticeConfig.cmake.in ${CMAKE_BINARY_DIR}/latticeConfig.cmake
  INSTALL_DESTINATION ${LATTICE_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/latticeConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/latticeConfig.cmake ${CMAKE_BINARY_DIR}/latticeConfigVersion.cmake
  DESTINATION ${LATTICE_CMAKE_DIR})

# pkg-config: ${pcfiledir} is lib/pkgconfig (or the multiarch one) of the prefix
file(RELATIVE_PATH PREFIX_FROM_PCDIR ${LATTICE_ABS_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
foreach(pc lattice lattice-core)
  configure_file(cmake/${pc}.pc.in ${CMAKE_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/${pc}.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()
