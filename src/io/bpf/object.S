/* An eBPF object (src/io/bpf/NAME.bpf.c, built by clang), linked into the
   daemon as bytes between NAME and NAME_end: offload.cpp and catch_all.cpp
   hand them to libbpf. */
#define GLUE(a, b) a##b
#define END(name) GLUE(name, _end)
	.section .rodata
	.balign 8
	.global NAME
NAME:
	.incbin OBJECT
	.global END(NAME)
END(NAME):
	.section .note.GNU-stack,"",@progbits
