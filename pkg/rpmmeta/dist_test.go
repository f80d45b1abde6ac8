package rpmmeta

import "testing"

func TestParseDist(t *testing.T) {
	abbrs := []string{"el", "fc", "amzn"}
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

func TestDistString(t *testing.T) {
	if got := (Dist{"el", "9"}).String(); got != "el9" {
		t.Errorf("String = %q, want el9", got)
	}
}
