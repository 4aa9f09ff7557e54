{
  # ocimount's block inflater (see inflate.c): zlib's inflate with Z_BLOCK for the gzip index
  # pass. No zlib is linked: the node binary exports its bundled zlib, and node-gyp's include
  # folder carries that zlib's headers. Built on install with the FUSE addon; when it is missing
  # or does not load, src/compress/block-inflater.ts falls back to pako (same results, slower).
  "targets": [{
    "target_name": "ocimount_inflate",
    "sources": [
      "inflate.c"
    ],
    "cflags": [
      "-O3",
      "-Wall"
    ],
    "xcode_settings": {
      "OTHER_CFLAGS": [
        "-O3",
        "-Wall"
      ]
    }
  }]
}
