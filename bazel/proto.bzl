"""gateway_proto_library: protoc + grpc_cpp_plugin from Debian, behind one macro.

gateway_proto_library(name = "x_proto", srcs = [...], deps = [...], has_services = False)
produces
  x_proto_srcs   filegroup of the .proto files (and, transitively, those of deps)
  x_proto_cc     alias kept for readability: the C++ messages (same as x_cc_proto)
  x_cc_proto     cc_library with the generated messages
  x_cc_grpc      cc_library with the generated gRPC stubs/services (has_services only)
where the base name drops a trailing "_proto". Generated headers are included by their proto
path: a proto at proto/clink/gateway/v1/a.proto is "clink/gateway/v1/a.pb.h". Well-known types
come from /usr/include (Debian's libprotobuf-dev).
"""

_PROTO_ROOT = "proto"

def _base(name):
    return name[:-len("_proto")] if name.endswith("_proto") else name

def gateway_proto_library(name, srcs, deps = [], has_services = False, visibility = ["//visibility:public"]):
    base = _base(name)
    pkg = native.package_name()
    if not (pkg == _PROTO_ROOT or pkg.startswith(_PROTO_ROOT + "/")):
        fail("gateway_proto_library must live under //" + _PROTO_ROOT)
    rel_pkg = pkg[len(_PROTO_ROOT) + 1:] if pkg != _PROTO_ROOT else ""
    stems = [s[:-len(".proto")] for s in srcs]

    native.filegroup(
        name = name + "_srcs",
        srcs = srcs + [d + "_srcs" for d in deps],
        visibility = visibility,
    )

    pb_h = [s + ".pb.h" for s in stems]
    pb_cc = [s + ".pb.cc" for s in stems]
    proto_paths = " ".join([(rel_pkg + "/" if rel_pkg else "") + s for s in srcs])
    native.genrule(
        name = base + "_pb_gen",
        srcs = [name + "_srcs"],
        outs = pb_h + pb_cc,
        cmd = ("protoc -I" + _PROTO_ROOT + " -I/usr/include --cpp_out=$(GENDIR)/" + _PROTO_ROOT +
               " " + proto_paths),
        message = "protoc " + name,
    )
    native.cc_library(
        name = base + "_cc_proto",
        srcs = pb_cc,
        hdrs = pb_h,
        strip_include_prefix = "/" + _PROTO_ROOT,
        deps = [d_base + "_cc_proto" for d_base in [_base(d) for d in deps]] + ["@protobuf"],
        # Keep every message registered in the generated descriptor pool even when nothing
        # references it by name: the codec, reflection and clink_cli look messages up by name.
        alwayslink = True,
        visibility = visibility,
    )
    if has_services:
        grpc_h = [s + ".grpc.pb.h" for s in stems]
        grpc_cc = [s + ".grpc.pb.cc" for s in stems]
        native.genrule(
            name = base + "_grpc_gen",
            srcs = [name + "_srcs"],
            outs = grpc_h + grpc_cc,
            cmd = ("protoc -I" + _PROTO_ROOT + " -I/usr/include --grpc_out=$(GENDIR)/" + _PROTO_ROOT +
                   " --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin " + proto_paths),
            message = "grpc_cpp_plugin " + name,
        )
        native.cc_library(
            name = base + "_cc_grpc",
            srcs = grpc_cc,
            hdrs = grpc_h,
            strip_include_prefix = "/" + _PROTO_ROOT,
            deps = [":" + base + "_cc_proto", "@grpcpp"],
            visibility = visibility,
        )
