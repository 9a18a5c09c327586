# Runs test_dist_mpi_timeout under mpirun and requires the job to end within
# MAX_SECONDS, with a non-zero status and rank 0's timeout message naming the
# collective and dist.timeout_s.
#   cmake -DMPIRUN="mpirun;--oversubscribe;..." -DBINARY=... -DCOLLECTIVE=barrier
#         -DMAX_SECONDS=30 -P expect_timeout.cmake
string(TIMESTAMP t0 "%s")
execute_process(COMMAND ${MPIRUN} -np 2 ${BINARY} ${COLLECTIVE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                TIMEOUT 55)
string(TIMESTAMP t1 "%s")
math(EXPR seconds "${t1} - ${t0}")
message("exit status ${rc} after ${seconds} s; output:\n${out}${err}")
if(rc EQUAL 0 OR NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "expected the job to end with a non-zero status, got '${rc}'")
endif()
if(seconds GREATER MAX_SECONDS)
  message(FATAL_ERROR "the job took ${seconds} s, more than ${MAX_SECONDS} s")
endif()
set(expected "error: rank 0: ${COLLECTIVE} did not complete within 2 s \\(waited [0-9.]+ s; dist.timeout_s = 2\\)")
if(NOT "${out}${err}" MATCHES "${expected}")
  message(FATAL_ERROR "no line matching '${expected}'")
endif()
