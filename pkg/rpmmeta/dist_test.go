package rpmmeta

import "testing"

func TestParseDist(t *testing.T) {
	abbrs := []string{"el", "fc", "amzn", "an", "oe", "mga"}
	tests := []struct {
		release string
		want    Dist
		wantOK  bool
	}{
		{"1.el7", Dist{"el", "7"}, true},
		{"3.el7_9", Dist{"el", "7"}, true},
		{"1.el8_10", Dist{"el", "8"}, true},
		{"1.module+el8.9.0+20000+abcdef12", Dist{"el", "8"}, true},
		{"1.fc39", Dist{"fc", "39"}, true},
		{"1.amzn2023", Dist{"amzn", "2023"}, true},
		{"2.el9.1", Dist{"el", "9"}, true},
		{"1.el9", Dist{"el", "9"}, true},
		{"el9", Dist{"el", "9"}, true},
		{"0.1.rc1.fc40", Dist{"fc", "40"}, true},
		// Rightmost wins: a rebuild of an el8 package retagged for el9.
		{"1.el8.el9", Dist{"el", "9"}, true},
		{"1", Dist{}, false},
		{"", Dist{}, false},
		{"1.foo", Dist{}, false},
		{"1.el", Dist{}, false},
		{"1.elx9", Dist{}, false},
		{"1.rhel9", Dist{}, false},
		{"1.el9x", Dist{}, false},
		{"1.el9_", Dist{}, false},
		{"1.el9_x", Dist{}, false},
		{"1.el_9", Dist{}, false},
		{"1.EL9", Dist{}, false},
		{"1.el9_2_1", Dist{}, false},
		{"1.module+el", Dist{}, false},
		{"1.module_el", Dist{}, false},
		{"1.module_", Dist{}, false},
		{"1.modulexel8", Dist{}, false},
		{"1.module_fc", Dist{}, false},
		{"1.el9sp", Dist{}, false},
		{"1.el9spx", Dist{}, false},
		{"1.el9sp1x", Dist{}, false},
		{"1.el9_1sp1", Dist{}, false},
		{"1.el9uek1", Dist{}, false},
		{"1.el9uekx", Dist{}, false},
		{"1.el9UEK", Dist{}, false},
		{"1.oesp1", Dist{}, false},
		{"1.oe", Dist{}, false},
		{"1.mga", Dist{}, false},
		{"1.amzn", Dist{}, false},
		{"1.an", Dist{}, false},
		{"1.anolis8", Dist{}, false},
		{"1.fc40_", Dist{}, false},
		{"1.el9-1", Dist{}, false},
		{"1.el 9", Dist{}, false},
		{"1.el\x009", Dist{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.release, func(t *testing.T) {
			got, ok := ParseDist(tc.release, abbrs)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("ParseDist(%q) = %+v, %v; want %+v, %v", tc.release, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestParseDistAbbrs: only the configured abbreviations count, matched exactly, and an empty one matches nothing.
func TestParseDistAbbrs(t *testing.T) {
	tests := []struct {
		name    string
		release string
		abbrs   []string
		want    Dist
		wantOK  bool
	}{
		{"abbr not configured", "1.fc39", []string{"el"}, Dist{}, false},
		{"no abbrs", "1.el9", nil, Dist{}, false},
		{"empty abbr", "1.9", []string{""}, Dist{}, false},
		{"longer abbr configured", "1.rhel9", []string{"el", "rhel"}, Dist{"rhel", "9"}, true},
		{"shorter abbr that is a prefix", "1.el9", []string{"e", "el"}, Dist{"el", "9"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseDist(tc.release, tc.abbrs)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("ParseDist(%q, %q) = %+v, %v; want %+v, %v", tc.release, tc.abbrs, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestParseDistReal: release strings in the shapes each distribution's repositories use (the comments name a
// package where the shape occurs; build numbers and module hashes are illustrative), with the abbreviations a
// multi-distribution deployment configures.
func TestParseDistReal(t *testing.T) {
	abbrs := []string{"el", "fc", "amzn", "an", "oe", "mga"}
	tests := []struct {
		distro, release string
		want            Dist
	}{
		// RHEL / CentOS / Rocky / AlmaLinux 7-10: GA builds, z-stream minor tags, their rebuilds, modules.
		{"EL7", "1160.119.1.el7", Dist{"el", "7"}},                    // kernel-3.10.0
		{"EL7", "25.el7_9", Dist{"el", "7"}},                          // openssl-1.0.2k
		{"EL7", "2.el7.centos", Dist{"el", "7"}},                      // CentOS rebranded builds
		{"EL8", "553.el8_10", Dist{"el", "8"}},                        // kernel-4.18.0
		{"EL8", "236.el8_9.13", Dist{"el", "8"}},                      // glibc-2.28, a z-stream respin
		{"EL8", "1.module+el8.9.0+19553+7a8d1a49", Dist{"el", "8"}},   // RHEL/Rocky module stream
		{"EL8", "1.module_el8.9.0+3745+02e1b364", Dist{"el", "8"}},    // AlmaLinux/CentOS module stream
		{"EL8", "3.module_el8.10.0+3858+6ad51f9f.1", Dist{"el", "8"}}, // module respin
		{"EL9", "427.13.1.el9_4", Dist{"el", "9"}},                    // kernel-5.14.0
		{"EL9", "34.el9", Dist{"el", "9"}},                            // a GA build
		{"EL9", "1.el9_4.alma.1", Dist{"el", "9"}},                    // AlmaLinux patched rebuild
		{"EL9", "1.module+el9.4.0+21209+7fa1e8ae", Dist{"el", "9"}},   // EL9 module
		{"EL10", "55.9.1.el10_0", Dist{"el", "10"}},                   // kernel-6.12.0
		{"EL10", "3.el10", Dist{"el", "10"}},                          // CentOS Stream 10
		{"Oracle", "29.0.1.el9", Dist{"el", "9"}},                     // rpm-4.16.1.3, Oracle's .0.1 rebuild
		{"Oracle", "251.0.1.el8_10.1", Dist{"el", "8"}},               // glibc respin after the dist
		{"Oracle", "200.131.27.el9uek", Dist{"el", "9"}},              // kernel-uek-5.15.0
		{"Oracle", "2136.330.7.el8uek", Dist{"el", "8"}},              // kernel-uek on OL8
		{"Fedora", "1.fc39", Dist{"fc", "39"}},
		{"Fedora", "301.fc40", Dist{"fc", "40"}},                      // kernel-6.8.5
		{"Fedora", "0.rc3.20241014git1a2b3c4.fc41", Dist{"fc", "41"}}, // snapshot release
		{"Fedora", "2.fc42", Dist{"fc", "42"}},
		{"Amazon Linux 2", "1.amzn2", Dist{"amzn", "2"}},
		{"Amazon Linux 2", "1.amzn2.0.1", Dist{"amzn", "2"}},           // Amazon's own respin
		{"Amazon Linux 2", "203.850.amzn2", Dist{"amzn", "2"}},         // kernel-5.10.215
		{"Amazon Linux 2023", "99.173.amzn2023", Dist{"amzn", "2023"}}, // kernel-6.1.90
		{"Amazon Linux 2023", "1.amzn2023.0.3", Dist{"amzn", "2023"}},
		{"Anolis", "236.0.1.an8", Dist{"an", "8"}},        // glibc-2.28 on Anolis 8
		{"Anolis", "9.an23", Dist{"an", "23"}},            // glibc-2.38 on Anolis 23
		{"openEuler", "15.oe2203sp1", Dist{"oe", "2203"}}, // 22.03 LTS SP1
		{"openEuler", "1.oe2403sp1", Dist{"oe", "2403"}},  // 24.03 LTS SP1
		{"openEuler", "3.oe2203", Dist{"oe", "2203"}},     // 22.03 LTS GA
		{"openEuler", "5.oe2203sp3", Dist{"oe", "2203"}},
		{"Mageia", "1.mga9", Dist{"mga", "9"}},
		{"Mageia", "2.1.mga9", Dist{"mga", "9"}},
	}
	for _, tc := range tests {
		t.Run(tc.distro+"/"+tc.release, func(t *testing.T) {
			got, ok := ParseDist(tc.release, abbrs)
			if got != tc.want || !ok {
				t.Errorf("ParseDist(%q) = %+v, %v; want %+v, true", tc.release, got, ok, tc.want)
			}
		})
	}
}

func TestDistString(t *testing.T) {
	if got := (Dist{"el", "9"}).String(); got != "el9" {
		t.Errorf("String = %q, want el9", got)
	}
}
