# configs/README.md must be exactly what `scorch config reference` prints (the
# key table in src/core/config_table.cpp). Regenerate with:
#   build/scorch config reference > configs/README.md
#   cmake -DSCORCH=build/scorch -DEXPECTED=configs/README.md -P config_reference_test.cmake
execute_process(COMMAND ${SCORCH} config reference OUTPUT_VARIABLE generated RESULT_VARIABLE rc
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "`scorch config reference` failed (${rc}): ${err}")
endif()
file(READ ${EXPECTED} expected)
if(NOT generated STREQUAL expected)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/config_reference.generated.md "${generated}")
  message(FATAL_ERROR "${EXPECTED} differs from `scorch config reference` (the key table): "
                      "regenerate it with `build/scorch config reference > configs/README.md`; "
                      "the generated text is in ${CMAKE_CURRENT_BINARY_DIR}/config_reference.generated.md")
endif()
message(STATUS "configs/README.md equals `scorch config reference`")
