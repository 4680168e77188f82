package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/cms-pcl/spyagency/internal/pcl"
)

// ClassRule derives a run class from OMS attributes. Every condition that is set must hold (an empty
// regexp or a nil pointer is no condition); a rule without conditions matches every run.
type ClassRule struct {
	// Class is the class name. "{yy}" is replaced by the two-digit year of the run's start and "{yyyy}"
	// by the four-digit one; a name without a placeholder gets the two-digit year appended, so "Cosmics"
	// gives "Cosmics25", as the Run Registry names its classes.
	Class string `yaml:"class"`
	// Era is a regexp over OMS `era` (e.g. "^Run2025").
	Era string `yaml:"era"`
	// HLTKey is a regexp over OMS `hlt_key` (e.g. "^/cdaq/physics/").
	HLTKey string `yaml:"hlt_key"`
	// FillType is a regexp over OMS `fill_type_runtime` (PROTONS, PB, COSMICS...).
	FillType string `yaml:"fill_type"`
	// Sequence is a regexp over OMS `sequence` (GLOBAL-RUN...).
	Sequence string `yaml:"sequence"`
	// StableBeam, when set, must equal OMS `stable_beam`.
	StableBeam *bool `yaml:"stable_beam"`
	// MinBField, when set, is the smallest OMS `b_field` (tesla) the rule accepts.
	MinBField *float64 `yaml:"min_b_field"`
}

// DefaultClassRules classify runs as the Run Registry would:
//   - an HLT menu of the cosmic family (/cdaq/cosmic/...) makes a Cosmics run;
//   - a physics menu (/cdaq/physics/...) in a fill with lead ions makes an HI run;
//   - a physics menu in a proton fill, or with stable beams, makes a Collisions run;
//   - anything else (circulating-beam and special menus, mini-DAQ and private runs) is Commissioning.
//
// The physics menu is what separates collisions from beam commissioning: circulating-beam runs of a
// proton fill use /cdaq/circulating/... menus, and a physics run recorded just before stable beams is
// still a collisions run.
func DefaultClassRules() []ClassRule {
	yes := true
	return []ClassRule{
		{Class: "Cosmics{yy}", HLTKey: `^/cdaq/cosmic`},
		{Class: "HI{yy}", HLTKey: `^/cdaq/physics/`, FillType: `(?i)(PB|ION)`},
		{Class: "Collisions{yy}", HLTKey: `^/cdaq/physics/`, FillType: `(?i)^PROTONS?$`},
		{Class: "Collisions{yy}", HLTKey: `^/cdaq/physics/`, StableBeam: &yes},
		{Class: "Commissioning{yy}"},
	}
}

// ClassOf applies the run class rules in order and returns the first match's class, with the run's year
// filled in. It returns "" when no rule matches (the default rules end with a catch-all) and skips a rule
// whose regexp does not compile (Check refuses such a file). A class already in info (from the Run
// Registry) is not consulted: this is the derivation from OMS attributes alone.
func (c *Config) ClassOf(info pcl.RunInfo) string {
	rules := c.RunClasses
	if len(rules) == 0 {
		rules = DefaultClassRules()
	}
	for _, r := range rules {
		ok, err := r.matches(info)
		if err == nil && ok {
			return expandClass(r.Class, info)
		}
	}
	return ""
}

// matches says whether the rule holds for the run.
func (r ClassRule) matches(info pcl.RunInfo) (bool, error) {
	for _, cond := range []struct{ pattern, value string }{
		{r.Era, info.Era}, {r.HLTKey, info.HLTKey}, {r.FillType, info.FillType}, {r.Sequence, info.Sequence},
	} {
		if cond.pattern == "" {
			continue
		}
		re, err := regexp.Compile(cond.pattern)
		if err != nil {
			return false, err
		}
		if !re.MatchString(cond.value) {
			return false, nil
		}
	}
	if r.StableBeam != nil && *r.StableBeam != info.StableBeam {
		return false, nil
	}
	if r.MinBField != nil && info.BField < *r.MinBField {
		return false, nil
	}
	return true, nil
}

// expandClass fills in the year. A run without a start time has no year: the placeholders vanish.
func expandClass(class string, info pcl.RunInfo) string {
	yyyy, yy := "", ""
	if !info.Start.IsZero() {
		y := info.Start.UTC().Year()
		yyyy = fmt.Sprintf("%04d", y)
		yy = fmt.Sprintf("%02d", y%100)
	}
	if !strings.Contains(class, "{yy}") && !strings.Contains(class, "{yyyy}") {
		return class + yy
	}
	return strings.NewReplacer("{yyyy}", yyyy, "{yy}", yy).Replace(class)
}
