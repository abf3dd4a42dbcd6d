# Browser end-to-end tests (Chromium + playwright-core) against the real gateway and
# server. Included from tests/gateway/gateway_tests.cmake.
#
#   ctest --test-dir build -L browser --output-on-failure
#
# Screenshots of every page and step land in build/browser-output/<scenario>/.

set(SAASODOO_BROWSER_TEST_DIR ${CMAKE_CURRENT_LIST_DIR})
add_test(NAME browser.e2e
  COMMAND ${CMAKE_COMMAND} -E env
          SAASODOO_BUILD_DIR=${CMAKE_BINARY_DIR}
          SAASODOO_TEST_PYTHON=${SAASODOO_TEST_PYTHON}
          SAASODOO_BROWSER_OUTPUT=${CMAKE_BINARY_DIR}/browser-output
          PYTHONDONTWRITEBYTECODE=1
          ${SAASODOO_TEST_PYTHON} -m pytest -q -p no:cacheprovider
          ${SAASODOO_BROWSER_TEST_DIR}/test_browser.py
  WORKING_DIRECTORY ${SAASODOO_BROWSER_TEST_DIR})
set_tests_properties(browser.e2e PROPERTIES
  LABELS browser
  TIMEOUT 1800
  RESOURCE_LOCK saasodoo_integration)
