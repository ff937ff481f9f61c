# One warning set for every target of the project. MPROC_WERROR turns warnings into errors (CI presets).
option(MPROC_WERROR "Treat compiler warnings as errors" OFF)

function(mproc_target_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4)
    if(MPROC_WERROR)
      target_compile_options(${target} PRIVATE /WX)
    endif()
  else()
    target_compile_options(${target} PRIVATE
      -Wall -Wextra -Wshadow -Wpointer-arith -Wcast-align -Wwrite-strings -Wundef
      -Wno-unused-parameter
      $<$<COMPILE_LANGUAGE:C>:-Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition>)
    if(MPROC_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()
