{
  "patcher": {
    "fileversion": 1,
    "appversion": {
      "major": 8,
      "minor": 5,
      "revision": 5,
      "architecture": "x64",
      "modernui": 1
    },
    "classnamespace": "box",
    "rect": [
      80.0,
      80.0,
      1180.0,
      820.0
    ],
    "bglocked": 0,
    "openinpresentation": 0,
    "default_fontsize": 12.0,
    "default_fontface": 0,
    "default_fontname": "Arial",
    "gridonopen": 1,
    "gridsize": [
      15.0,
      15.0
    ],
    "gridsnaponopen": 1,
    "toolbarvisible": 1,
    "description": "liveagent: play with a liveagent server (real-time RL accompanist) over OSC",
    "tags": "liveagent osc accompaniment",
    "boxes": [
      {
        "box": {
          "maxclass": "comment",
          "text": "liveagent: a real-time RL accompanist, played over OSC",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            10,
            500,
            20.0
          ],
          "id": "obj-1"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "1) in a terminal: liveagent serve --osc-port 9000 --osc-out 127.0.0.1:9001   2) click start: the demo melody (or your MIDI keyboard, [notein]) goes to the server, and its accompaniment comes back on the beat grid to [noteout].",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            34,
            1100,
            40.0
          ],
          "linecount": 2,
          "id": "obj-2"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "udpsend 127.0.0.1 9000",
          "numinlets": 1,
          "numoutlets": 0,
          "outlettype": [],
          "patching_rect": [
            20,
            700,
            166.0,
            22.0
          ],
          "id": "obj-3"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "to the server (--osc-port): /liveagent/... messages as OSC",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            200,
            700,
            300,
            40.0
          ],
          "linecount": 2,
          "id": "obj-4"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "transport",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            90,
            100,
            20.0
          ],
          "id": "obj-5"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "start",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            20,
            115,
            51.0,
            22.0
          ],
          "id": "obj-6"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "stop",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            80,
            115,
            44.0,
            22.0
          ],
          "id": "obj-7"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "t b b b",
          "numinlets": 1,
          "numoutlets": 3,
          "outlettype": [
            "bang",
            "bang",
            "bang"
          ],
          "patching_rect": [
            20,
            150,
            61.0,
            22.0
          ],
          "id": "obj-8"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "t b b",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "bang",
            "bang"
          ],
          "patching_rect": [
            80,
            180,
            47.0,
            22.0
          ],
          "id": "obj-9"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/start",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            20,
            215,
            128.0,
            22.0
          ],
          "id": "obj-10"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/stop",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            140,
            215,
            121.0,
            22.0
          ],
          "id": "obj-11"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/continue",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            250,
            215,
            149.0,
            22.0
          ],
          "id": "obj-12"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "tempo (BPM)",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            380,
            90,
            100,
            20.0
          ],
          "id": "obj-13"
        }
      },
      {
        "box": {
          "maxclass": "flonum",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "",
            "bang"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            380,
            115,
            50.0,
            22.0
          ],
          "id": "obj-14"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "loadbang",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            "bang"
          ],
          "patching_rect": [
            470,
            90,
            68.0,
            22.0
          ],
          "id": "obj-15"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "100.",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            470,
            115,
            44.0,
            22.0
          ],
          "id": "obj-16"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "t f f",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "float",
            "float"
          ],
          "patching_rect": [
            380,
            150,
            47.0,
            22.0
          ],
          "id": "obj-17"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "prepend /liveagent/tempo",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            380,
            250,
            180.0,
            22.0
          ],
          "id": "obj-18"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "!/ 60000.",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            "float"
          ],
          "patching_rect": [
            470,
            180,
            75.0,
            22.0
          ],
          "id": "obj-19"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "performer: MIDI keyboard...",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            620,
            90,
            200,
            20.0
          ],
          "id": "obj-20"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "notein",
          "numinlets": 1,
          "numoutlets": 3,
          "outlettype": [
            "int",
            "int",
            "int"
          ],
          "patching_rect": [
            620,
            115,
            54.0,
            22.0
          ],
          "id": "obj-21"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "pack 0 0",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            620,
            150,
            68.0,
            22.0
          ],
          "id": "obj-22"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "...or the demo melody",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            800,
            90,
            200,
            20.0
          ],
          "id": "obj-23"
        }
      },
      {
        "box": {
          "maxclass": "toggle",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            "int"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            800,
            115,
            24.0,
            24.0
          ],
          "id": "obj-24"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "demo on/off",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            830,
            115,
            100,
            20.0
          ],
          "id": "obj-25"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "1",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            940,
            115,
            23.0,
            22.0
          ],
          "id": "obj-26"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "gate",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            800,
            180,
            40.0,
            22.0
          ],
          "id": "obj-27"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "metro 600",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            "bang"
          ],
          "patching_rect": [
            800,
            150,
            75.0,
            22.0
          ],
          "id": "obj-28"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "1",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            700,
            215,
            23.0,
            22.0
          ],
          "id": "obj-29"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "0",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            740,
            215,
            23.0,
            22.0
          ],
          "id": "obj-30"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "0",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            640,
            250,
            23.0,
            22.0
          ],
          "id": "obj-31"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "counter 0 31",
          "numinlets": 5,
          "numoutlets": 4,
          "outlettype": [
            "int",
            "",
            "",
            "int"
          ],
          "patching_rect": [
            800,
            215,
            96.0,
            22.0
          ],
          "id": "obj-32"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "zl.lookup",
          "numinlets": 2,
          "numoutlets": 2,
          "outlettype": [
            "",
            ""
          ],
          "patching_rect": [
            800,
            250,
            75.0,
            22.0
          ],
          "id": "obj-33"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "64 64 65 67 67 65 64 62 60 60 62 64 64 62 62 0 64 64 65 67 67 65 64 62 60 60 62 64 62 60 60 0",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            900,
            250,
            250.0,
            50.0
          ],
          "id": "obj-34"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "sel 0",
          "numinlets": 2,
          "numoutlets": 2,
          "outlettype": [
            "bang",
            ""
          ],
          "patching_rect": [
            800,
            285,
            47.0,
            22.0
          ],
          "id": "obj-35"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "makenote 90 500",
          "numinlets": 3,
          "numoutlets": 2,
          "outlettype": [
            "float",
            "float"
          ],
          "patching_rect": [
            800,
            320,
            117.0,
            22.0
          ],
          "id": "obj-36"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "pack 0 0",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            800,
            355,
            68.0,
            22.0
          ],
          "id": "obj-37"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "prepend /liveagent/note",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            620,
            400,
            173.0,
            22.0
          ],
          "id": "obj-38"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "pitch velocity; velocity 0 is a note-off",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            780,
            400,
            300,
            20.0
          ],
          "id": "obj-39"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "controls",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            300,
            100,
            20.0
          ],
          "id": "obj-40"
        }
      },
      {
        "box": {
          "maxclass": "flonum",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "",
            "bang"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            20,
            325,
            50.0,
            22.0
          ],
          "id": "obj-41"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "temperature (0 = greedy)",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            75,
            325,
            170,
            20.0
          ],
          "id": "obj-42"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "prepend /liveagent/temperature",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            20,
            360,
            222.0,
            22.0
          ],
          "id": "obj-43"
        }
      },
      {
        "box": {
          "maxclass": "toggle",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            "int"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            250,
            325,
            24.0,
            24.0
          ],
          "id": "obj-44"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "mute",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            280,
            325,
            60,
            20.0
          ],
          "id": "obj-45"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "prepend /liveagent/mute",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            250,
            395,
            173.0,
            22.0
          ],
          "id": "obj-46"
        }
      },
      {
        "box": {
          "maxclass": "button",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            "bang"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            350,
            325,
            24.0,
            24.0
          ],
          "id": "obj-47"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "panic",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            380,
            325,
            60,
            20.0
          ],
          "id": "obj-48"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/panic",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            350,
            430,
            128.0,
            22.0
          ],
          "id": "obj-49"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/policy rules",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            20,
            465,
            177.0,
            22.0
          ],
          "id": "obj-50"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "swap the policy at the next bar: a name in export/, a .onnx path, or rules",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            490,
            440,
            40.0
          ],
          "linecount": 2,
          "id": "obj-51"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/status",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            250,
            465,
            135.0,
            22.0
          ],
          "id": "obj-52"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "sync: with the server on --clock osc, send a pulse each beat of Max's transport",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            520,
            560,
            20.0
          ],
          "id": "obj-53"
        }
      },
      {
        "box": {
          "maxclass": "toggle",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            "int"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            20,
            550,
            24.0,
            24.0
          ],
          "id": "obj-54"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "beat pulses",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            50,
            550,
            100,
            20.0
          ],
          "id": "obj-55"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "metro 4n @quantize 4n",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            "bang"
          ],
          "patching_rect": [
            20,
            585,
            159.0,
            22.0
          ],
          "id": "obj-56"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/beat",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            20,
            620,
            121.0,
            22.0
          ],
          "id": "obj-57"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "from the server (--osc-out 127.0.0.1:9001)",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            450,
            470,
            400,
            20.0
          ],
          "id": "obj-58"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "udpreceive 9001",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            450,
            495,
            117.0,
            22.0
          ],
          "id": "obj-59"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "route /liveagent/out/alto/note /liveagent/out/tenor/note /liveagent/out/bass/note /liveagent/out/note",
          "numinlets": 2,
          "numoutlets": 5,
          "outlettype": [
            "",
            "",
            "",
            "",
            ""
          ],
          "patching_rect": [
            450,
            525,
            719.0,
            22.0
          ],
          "id": "obj-60"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "band satb: liveagent serve --band satb --osc-port 9000 --osc-out 127.0.0.1:9001 plays alto, tenor and bass under your melody, each on its own address and MIDI channel (2 3 4); tick band, since the v1 /liveagent/out/note carries the bass too",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            950,
            1100,
            40.0
          ],
          "linecount": 2,
          "id": "obj-61"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "unpack 0 0",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "int",
            "int"
          ],
          "patching_rect": [
            450.0,
            560,
            82.0,
            22.0
          ],
          "id": "obj-62"
        }
      },
      {
        "box": {
          "maxclass": "number",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "",
            "bang"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            450.0,
            590,
            50.0,
            22.0
          ],
          "id": "obj-63"
        }
      },
      {
        "box": {
          "maxclass": "number",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "",
            "bang"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            505.0,
            590,
            50.0,
            22.0
          ],
          "id": "obj-64"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "noteout 2",
          "numinlets": 3,
          "numoutlets": 0,
          "outlettype": [],
          "patching_rect": [
            450.0,
            620,
            75.0,
            22.0
          ],
          "id": "obj-65"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "alto: channel 2",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            450.0,
            650,
            160,
            20.0
          ],
          "id": "obj-66"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "unpack 0 0",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "int",
            "int"
          ],
          "patching_rect": [
            620.0,
            560,
            82.0,
            22.0
          ],
          "id": "obj-67"
        }
      },
      {
        "box": {
          "maxclass": "number",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "",
            "bang"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            620.0,
            590,
            50.0,
            22.0
          ],
          "id": "obj-68"
        }
      },
      {
        "box": {
          "maxclass": "number",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "",
            "bang"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            675.0,
            590,
            50.0,
            22.0
          ],
          "id": "obj-69"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "noteout 3",
          "numinlets": 3,
          "numoutlets": 0,
          "outlettype": [],
          "patching_rect": [
            620.0,
            620,
            75.0,
            22.0
          ],
          "id": "obj-70"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "tenor: channel 3",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            620.0,
            650,
            160,
            20.0
          ],
          "id": "obj-71"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "unpack 0 0",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "int",
            "int"
          ],
          "patching_rect": [
            790.0,
            560,
            82.0,
            22.0
          ],
          "id": "obj-72"
        }
      },
      {
        "box": {
          "maxclass": "number",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "",
            "bang"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            790.0,
            590,
            50.0,
            22.0
          ],
          "id": "obj-73"
        }
      },
      {
        "box": {
          "maxclass": "number",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "",
            "bang"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            845.0,
            590,
            50.0,
            22.0
          ],
          "id": "obj-74"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "noteout 4",
          "numinlets": 3,
          "numoutlets": 0,
          "outlettype": [],
          "patching_rect": [
            790.0,
            620,
            75.0,
            22.0
          ],
          "id": "obj-75"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "bass: channel 4",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            790.0,
            650,
            160,
            20.0
          ],
          "id": "obj-76"
        }
      },
      {
        "box": {
          "maxclass": "toggle",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            "int"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            1070,
            525,
            24.0,
            24.0
          ],
          "id": "obj-77"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "band",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            1100,
            525,
            60,
            20.0
          ],
          "id": "obj-78"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "== 0",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            "int"
          ],
          "patching_rect": [
            1070,
            555,
            40.0,
            22.0
          ],
          "id": "obj-79"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "gate 1 1",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            990,
            560,
            68.0,
            22.0
          ],
          "id": "obj-80"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "unpack 0 0",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "int",
            "int"
          ],
          "patching_rect": [
            990,
            590,
            82.0,
            22.0
          ],
          "id": "obj-81"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "noteout",
          "numinlets": 3,
          "numoutlets": 0,
          "outlettype": [],
          "patching_rect": [
            990,
            620,
            61.0,
            22.0
          ],
          "id": "obj-82"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "accompaniment (solo, or the band's bass) to your synth: double-click it",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            990,
            650,
            180,
            60.0
          ],
          "linecount": 3,
          "id": "obj-83"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "route /liveagent/out/beat /liveagent/status /liveagent/error",
          "numinlets": 2,
          "numoutlets": 4,
          "outlettype": [
            "",
            "",
            "",
            ""
          ],
          "patching_rect": [
            800,
            700,
            432.0,
            22.0
          ],
          "id": "obj-84"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "unpack 0 0",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "int",
            "int"
          ],
          "patching_rect": [
            800,
            735,
            82.0,
            22.0
          ],
          "id": "obj-85"
        }
      },
      {
        "box": {
          "maxclass": "number",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "",
            "bang"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            800,
            770,
            50.0,
            22.0
          ],
          "id": "obj-86"
        }
      },
      {
        "box": {
          "maxclass": "number",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "",
            "bang"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            860,
            770,
            50.0,
            22.0
          ],
          "id": "obj-87"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "bar beat",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            920,
            770,
            80,
            20.0
          ],
          "id": "obj-88"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "print liveagent",
          "numinlets": 1,
          "numoutlets": 0,
          "outlettype": [],
          "patching_rect": [
            1000,
            735,
            117.0,
            22.0
          ],
          "id": "obj-89"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "status (key value pairs) and errors, in the Max console",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            1000,
            765,
            180,
            60.0
          ],
          "linecount": 3,
          "id": "obj-90"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "style (liveagent serve --policy style): pad x = register, y = calm .. busy",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            20,
            740,
            560,
            20.0
          ],
          "id": "obj-91"
        }
      },
      {
        "box": {
          "maxclass": "pictslider",
          "numinlets": 2,
          "numoutlets": 2,
          "outlettype": [
            "int",
            "int"
          ],
          "parameter_enable": 0,
          "patching_rect": [
            20,
            765,
            100.0,
            100.0
          ],
          "id": "obj-92"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "scale 0 127 -1. 1.",
          "numinlets": 6,
          "numoutlets": 1,
          "outlettype": [
            "float"
          ],
          "patching_rect": [
            140,
            835,
            138.0,
            22.0
          ],
          "id": "obj-93"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "scale 0 127 -1. 1.",
          "numinlets": 6,
          "numoutlets": 1,
          "outlettype": [
            "float"
          ],
          "patching_rect": [
            260,
            775,
            138.0,
            22.0
          ],
          "id": "obj-94"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "t b f",
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "bang",
            "float"
          ],
          "patching_rect": [
            260,
            805,
            47.0,
            22.0
          ],
          "id": "obj-95"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "pack 0. 0.",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            140,
            870,
            82.0,
            22.0
          ],
          "id": "obj-96"
        }
      },
      {
        "box": {
          "maxclass": "newobj",
          "text": "prepend /liveagent/style",
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            140,
            900,
            180.0,
            22.0
          ],
          "id": "obj-97"
        }
      },
      {
        "box": {
          "maxclass": "comment",
          "text": "moods (each glides over a bar)",
          "numinlets": 1,
          "numoutlets": 0,
          "patching_rect": [
            480,
            765,
            220,
            20.0
          ],
          "id": "obj-98"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/mood calm",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            480,
            790,
            156.0,
            22.0
          ],
          "id": "obj-99"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/mood busy",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            480,
            818,
            156.0,
            22.0
          ],
          "id": "obj-100"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/mood bright",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            480,
            846,
            170.0,
            22.0
          ],
          "id": "obj-101"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/mood dark",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            480,
            874,
            156.0,
            22.0
          ],
          "id": "obj-102"
        }
      },
      {
        "box": {
          "maxclass": "message",
          "text": "/liveagent/mood neutral",
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ],
          "patching_rect": [
            480,
            902,
            177.0,
            22.0
          ],
          "id": "obj-103"
        }
      }
    ],
    "lines": [
      {
        "patchline": {
          "source": [
            "obj-6",
            0
          ],
          "destination": [
            "obj-8",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-7",
            0
          ],
          "destination": [
            "obj-9",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-8",
            1
          ],
          "destination": [
            "obj-10",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-9",
            0
          ],
          "destination": [
            "obj-11",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-10",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-11",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-12",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-15",
            0
          ],
          "destination": [
            "obj-16",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-16",
            0
          ],
          "destination": [
            "obj-14",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-14",
            0
          ],
          "destination": [
            "obj-17",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-17",
            0
          ],
          "destination": [
            "obj-18",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-18",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-17",
            1
          ],
          "destination": [
            "obj-19",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-21",
            0
          ],
          "destination": [
            "obj-22",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-21",
            1
          ],
          "destination": [
            "obj-22",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-15",
            0
          ],
          "destination": [
            "obj-26",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-26",
            0
          ],
          "destination": [
            "obj-24",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-24",
            0
          ],
          "destination": [
            "obj-27",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-19",
            0
          ],
          "destination": [
            "obj-28",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-28",
            0
          ],
          "destination": [
            "obj-27",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-8",
            2
          ],
          "destination": [
            "obj-31",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-8",
            0
          ],
          "destination": [
            "obj-29",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-9",
            1
          ],
          "destination": [
            "obj-30",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-29",
            0
          ],
          "destination": [
            "obj-28",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-30",
            0
          ],
          "destination": [
            "obj-28",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-27",
            0
          ],
          "destination": [
            "obj-32",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-31",
            0
          ],
          "destination": [
            "obj-32",
            2
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-32",
            0
          ],
          "destination": [
            "obj-33",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-15",
            0
          ],
          "destination": [
            "obj-34",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-34",
            0
          ],
          "destination": [
            "obj-33",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-33",
            0
          ],
          "destination": [
            "obj-35",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-35",
            1
          ],
          "destination": [
            "obj-36",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-36",
            0
          ],
          "destination": [
            "obj-37",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-36",
            1
          ],
          "destination": [
            "obj-37",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-22",
            0
          ],
          "destination": [
            "obj-38",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-37",
            0
          ],
          "destination": [
            "obj-38",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-38",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-41",
            0
          ],
          "destination": [
            "obj-43",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-44",
            0
          ],
          "destination": [
            "obj-46",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-47",
            0
          ],
          "destination": [
            "obj-49",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-43",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-46",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-49",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-50",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-52",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-54",
            0
          ],
          "destination": [
            "obj-56",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-56",
            0
          ],
          "destination": [
            "obj-57",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-57",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-59",
            0
          ],
          "destination": [
            "obj-60",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-60",
            0
          ],
          "destination": [
            "obj-62",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-62",
            0
          ],
          "destination": [
            "obj-63",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-62",
            1
          ],
          "destination": [
            "obj-64",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-62",
            0
          ],
          "destination": [
            "obj-65",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-62",
            1
          ],
          "destination": [
            "obj-65",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-60",
            1
          ],
          "destination": [
            "obj-67",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-67",
            0
          ],
          "destination": [
            "obj-68",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-67",
            1
          ],
          "destination": [
            "obj-69",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-67",
            0
          ],
          "destination": [
            "obj-70",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-67",
            1
          ],
          "destination": [
            "obj-70",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-60",
            2
          ],
          "destination": [
            "obj-72",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-72",
            0
          ],
          "destination": [
            "obj-73",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-72",
            1
          ],
          "destination": [
            "obj-74",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-72",
            0
          ],
          "destination": [
            "obj-75",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-72",
            1
          ],
          "destination": [
            "obj-75",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-77",
            0
          ],
          "destination": [
            "obj-79",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-79",
            0
          ],
          "destination": [
            "obj-80",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-60",
            3
          ],
          "destination": [
            "obj-80",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-80",
            0
          ],
          "destination": [
            "obj-81",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-81",
            0
          ],
          "destination": [
            "obj-82",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-81",
            1
          ],
          "destination": [
            "obj-82",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-60",
            4
          ],
          "destination": [
            "obj-84",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-84",
            0
          ],
          "destination": [
            "obj-85",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-85",
            0
          ],
          "destination": [
            "obj-86",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-85",
            1
          ],
          "destination": [
            "obj-87",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-84",
            1
          ],
          "destination": [
            "obj-89",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-84",
            2
          ],
          "destination": [
            "obj-89",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-92",
            0
          ],
          "destination": [
            "obj-93",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-92",
            1
          ],
          "destination": [
            "obj-94",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-94",
            0
          ],
          "destination": [
            "obj-95",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-93",
            0
          ],
          "destination": [
            "obj-96",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-95",
            1
          ],
          "destination": [
            "obj-96",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-95",
            0
          ],
          "destination": [
            "obj-96",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-96",
            0
          ],
          "destination": [
            "obj-97",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-97",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-99",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-100",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-101",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-102",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "obj-103",
            0
          ],
          "destination": [
            "obj-3",
            0
          ]
        }
      }
    ]
  }
}
