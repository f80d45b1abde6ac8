package config

import "time"

// MinRescanInterval is the shortest indexer.rescan_interval accepted: a rescan lists every Packages/ directory
// under top_dir (and, once per repository, parses its primary.xml.gz), so a sub-second interval would keep a core
// busy on a large tree for no one's benefit. Tests that need a fast rescan call the scheduler's Rescan directly.
const MinRescanInterval = time.Second
