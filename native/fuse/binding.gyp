{
  # ocimount's fork of fuse-native's native part (see fuse-native.c). Built on install by the
  # package's `install` script (node-gyp rebuild in this folder); only the addon, no prebuilds.
  # Headers: napi-macros, and libfuse 2.9's from fuse-shared-library (no libfuse-dev needed).
  # Linked against the libfuse.so that fuse-shared-library ships, whose soname is libfuse.so.2:
  # the addon then needs the system's libfuse.so.2 (Debian/Ubuntu libfuse2) at run time only,
  # so it builds where libfuse2 is not installed yet.
  "targets": [{
    "target_name": "ocimount_fuse",
    "include_dirs": [
      "<!(node -e \"require('napi-macros')\")",
      "<!(node -e \"require('fuse-shared-library/include')\")",
    ],
    "libraries": [
      "<!(node -e \"require('fuse-shared-library/lib')\")",
    ],
    "sources": [
      "fuse-native.c"
    ],
    "cflags": [
      "-g",
      "-O3",
      "-Wall"
    ],
    "xcode_settings": {
      "OTHER_CFLAGS": [
        "-g",
        "-O3",
        "-Wall"
      ]
    }
  }]
}
