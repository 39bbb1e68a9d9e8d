# de_set_warnings(target): the project's warning set, PRIVATE to one target (STYLE.md).
function(de_set_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4 $<$<BOOL:${DE_DEVELOPER_MODE}>:/WX>)
    return()
  endif()
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
    -Wold-style-cast -Woverloaded-virtual -Wextra-semi
    $<$<BOOL:${DE_DEVELOPER_MODE}>:-Werror>)
endfunction()
