# The target `bootfleet_version`: a static library defining
# bootfleet::util::version() (lib/util/version.h). Its source is rewritten at
# every build by cmake/write_version.cmake, but only when the text changes,
# so an unchanged tree rebuilds nothing; a new commit relinks the programs.
set(BOOTFLEET_VERSION_SOURCE ${CMAKE_BINARY_DIR}/generated/version.cc)
find_package(Git QUIET)
add_custom_target(bootfleet_version_source
  COMMAND ${CMAKE_COMMAND}
          -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
          -DOUTPUT=${BOOTFLEET_VERSION_SOURCE}
          -DPROJECT_VERSION=${PROJECT_VERSION}
          -DGIT_EXECUTABLE=${GIT_EXECUTABLE}
          -P ${PROJECT_SOURCE_DIR}/cmake/write_version.cmake
  BYPRODUCTS ${BOOTFLEET_VERSION_SOURCE}
  COMMENT "Checking the version (git describe)"
  VERBATIM)
add_library(bootfleet_version STATIC ${BOOTFLEET_VERSION_SOURCE})
add_dependencies(bootfleet_version bootfleet_version_source)
target_include_directories(bootfleet_version PRIVATE ${PROJECT_SOURCE_DIR}/lib)
