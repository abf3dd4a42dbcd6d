# The C client's unit tests, included by tests/CMakeLists.txt: the JSON printer and the
# status helpers of libsaasodoo_client.
if(CMOCKA_FOUND)
  add_executable(test_client_json ${CMAKE_CURRENT_LIST_DIR}/test_client_json.c)
  target_link_libraries(test_client_json PRIVATE saasodoo_client PkgConfig::CMOCKA)
  add_test(NAME unit_client_json COMMAND test_client_json)
  set_tests_properties(unit_client_json PROPERTIES LABELS unit TIMEOUT 60)
endif()
