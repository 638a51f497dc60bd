/* The kernel fast path's eBPF object (offload.bpf.c, built by clang), linked
   into the daemon as bytes: offload.cpp hands them to libbpf. */
	.section .rodata
	.balign 8
	.global anyrtpproxy_offload_object
anyrtpproxy_offload_object:
	.incbin OBJECT
	.global anyrtpproxy_offload_object_end
anyrtpproxy_offload_object_end:
	.section .note.GNU-stack,"",@progbits
