# Gateway tests: pytest with curl against saasodoo-gateway in front of a private
# PostgreSQL and the real saasodoo-server (fixtures shared with tests/integration),
# plus the gateway's Go unit tests. Included from tests/CMakeLists.txt.
#
#   ctest --test-dir build -L gateway --output-on-failure

set(SAASODOO_GATEWAY_TEST_DIR ${CMAKE_CURRENT_LIST_DIR})
if(NOT DEFINED SAASODOO_TEST_PYTHON)
  set(SAASODOO_TEST_PYTHON /usr/bin/python3 CACHE FILEPATH
      "Python with grpcio, protobuf and pytest (Debian: python3-grpcio python3-protobuf python3-pytest)")
endif()

foreach(name test_rest_api test_gateway_process)
  add_test(NAME gateway.${name}
    COMMAND ${CMAKE_COMMAND} -E env
            SAASODOO_BUILD_DIR=${CMAKE_BINARY_DIR}
            SAASODOO_TEST_PYTHON=${SAASODOO_TEST_PYTHON}
            PYTHONDONTWRITEBYTECODE=1
            ${SAASODOO_TEST_PYTHON} -m pytest -q -p no:cacheprovider
            ${SAASODOO_GATEWAY_TEST_DIR}/${name}.py
    WORKING_DIRECTORY ${SAASODOO_GATEWAY_TEST_DIR})
  set_tests_properties(gateway.${name} PROPERTIES
    LABELS gateway
    TIMEOUT 240
    RESOURCE_LOCK saasodoo_integration)
endforeach()

# go test on gateway/*_test.go, offline, with the build's GOPATH and cache.
if(SAASODOO_GO_EXECUTABLE)
  add_test(NAME gateway.go_unit
    COMMAND ${CMAKE_COMMAND} -E env ${SAASODOO_GO_ENV} ${SAASODOO_GO_EXECUTABLE} test -count=1 .
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/gateway)
  set_tests_properties(gateway.go_unit PROPERTIES LABELS gateway TIMEOUT 180)
endif()
include(${CMAKE_CURRENT_LIST_DIR}/../browser/browser_tests.cmake)
