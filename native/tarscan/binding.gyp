{
  # ocimount's plain tar header scanner (see tarscan.c): the common tar members of an
  # uncompressed layer indexed in C, straight into the index's columns. Built on install with
  # the other addons; when it is missing or does not load, src/tar/native-scan.ts is not used
  # and the JavaScript scanner reads every header (same index, slower).
  "targets": [{
    "target_name": "ocimount_tarscan",
    "sources": [
      "tarscan.c"
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
