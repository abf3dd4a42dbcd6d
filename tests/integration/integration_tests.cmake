# Integration tests: pytest against a private PostgreSQL and the real saasodoo-server,
# through Python grpcio. Included from tests/CMakeLists.txt; one ctest entry per file.
#
#   ctest --test-dir build -L integration --output-on-failure
#
# Each entry starts its own PostgreSQL cluster and server on free ports under /tmp, so
# entries share nothing; they still run one at a time (RESOURCE_LOCK) because the load
# and shutdown tests time the server and need the machine's cores to themselves.

set(SAASODOO_TEST_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python with grpcio, protobuf and pytest (Debian: python3-grpcio python3-protobuf python3-pytest)")
set(SAASODOO_INTEGRATION_DIR ${CMAKE_CURRENT_LIST_DIR})

set(SAASODOO_INTEGRATION_TESTS
  test_tenants
  test_operations
  test_transport
  test_health_reflection
  test_durability
  test_store
  test_config
  test_cli
  test_example
  test_provisioning
  test_lifecycle
  test_admin_servers
  test_migration
  test_crash
  test_storage
  test_identity
  test_authz
  test_supabase
  test_tls
  test_backups)

set(SAASODOO_INTEGRATION_TIMEOUTS
  test_tenants=300
  test_operations=180
  test_transport=300
  test_health_reflection=240
  test_durability=420
  test_store=180
  test_config=180
  test_example=120
  test_provisioning=240
  test_lifecycle=300
  test_admin_servers=240
  test_migration=300
  test_crash=600
  test_storage=180
  test_identity=180
  test_authz=180
  test_supabase=180
  test_tls=180
  test_backups=600)

foreach(name ${SAASODOO_INTEGRATION_TESTS})
  set(timeout 300)
  foreach(pair ${SAASODOO_INTEGRATION_TIMEOUTS})
    if(pair MATCHES "^${name}=([0-9]+)$")
      set(timeout ${CMAKE_MATCH_1})
    endif()
  endforeach()
  add_test(NAME integration.${name}
    COMMAND ${CMAKE_COMMAND} -E env
            SAASODOO_BUILD_DIR=${CMAKE_BINARY_DIR}
            SAASODOO_TEST_PYTHON=${SAASODOO_TEST_PYTHON}
            PYTHONDONTWRITEBYTECODE=1
            ${SAASODOO_TEST_PYTHON} -m pytest -q -p no:cacheprovider
            ${SAASODOO_INTEGRATION_DIR}/${name}.py
    WORKING_DIRECTORY ${SAASODOO_INTEGRATION_DIR})
  set_tests_properties(integration.${name} PROPERTIES
    LABELS integration
    TIMEOUT ${timeout}
    RESOURCE_LOCK saasodoo_integration)
endforeach()
