package config

import (
	"errors"
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
// Registry) is not consulted: this is the derivation from OMS attributes alone. It compiles the rules on
// each call; a caller classifying many runs can keep a Classifier.
func (c *Config) ClassOf(info pcl.RunInfo) string {
	rules := c.RunClasses
	if len(rules) == 0 {
		rules = DefaultClassRules()
	}
	k, _ := NewClassifier(rules)
	return k.ClassOf(info)
}

// Classifier is a list of class rules with their regexps compiled.
type Classifier struct {
	rules []compiledRule
}

type compiledRule struct {
	ClassRule
	era, hltKey, fillType, sequence *regexp.Regexp // nil: no condition
}

// NewClassifier compiles the rules. A rule with a bad regexp is left out and reported in the error; the
// Classifier returned is usable either way.
func NewClassifier(rules []ClassRule) (*Classifier, error) {
	k := &Classifier{}
	var errs []error
	for i, r := range rules {
		cr := compiledRule{ClassRule: r}
		var bad error
		for _, f := range []struct {
			pattern string
			re      **regexp.Regexp
		}{{r.Era, &cr.era}, {r.HLTKey, &cr.hltKey}, {r.FillType, &cr.fillType}, {r.Sequence, &cr.sequence}} {
			if f.pattern == "" {
				continue
			}
			re, err := regexp.Compile(f.pattern)
			if err != nil {
				bad = fmt.Errorf("run class rule %d (%s): %w", i, r.Class, err)
				break
			}
			*f.re = re
		}
		if bad != nil {
			errs = append(errs, bad)
			continue
		}
		k.rules = append(k.rules, cr)
	}
	return k, errors.Join(errs...)
}

// ClassOf returns the class of the first rule that matches the run, "" if none does.
func (k *Classifier) ClassOf(info pcl.RunInfo) string {
	for _, r := range k.rules {
		if r.matches(info) {
			return expandClass(r.Class, info)
		}
	}
	return ""
}

// matches says whether every condition of the rule holds for the run.
func (r compiledRule) matches(info pcl.RunInfo) bool {
	for _, cond := range []struct {
		re    *regexp.Regexp
		value string
	}{{r.era, info.Era}, {r.hltKey, info.HLTKey}, {r.fillType, info.FillType}, {r.sequence, info.Sequence}} {
		if cond.re != nil && !cond.re.MatchString(cond.value) {
			return false
		}
	}
	if r.StableBeam != nil && *r.StableBeam != info.StableBeam {
		return false
	}
	if r.MinBField != nil && info.BField < *r.MinBField {
		return false
	}
	return true
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
