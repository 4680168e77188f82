package web

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsOnlyTheDomain: the web shows the domain and the store's read models, and takes what it
// needs from the wiring as small interfaces of its own. It must not reach into the loop, the
// configuration or the spies (issue 11), and neither must the packages it imports.
func TestImportsOnlyTheDomain(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list is not available here: %v", err)
	}
	const module = "github.com/cms-pcl/spyagency/internal/"
	for _, dep := range strings.Fields(string(out)) {
		pkg, ok := strings.CutPrefix(dep, module)
		if !ok {
			continue
		}
		for _, banned := range []string{"agency", "config", "spy", "app", "sim", "steer", "reconcile"} {
			if pkg == banned || strings.HasPrefix(pkg, banned+"/") {
				t.Errorf("the web depends on internal/%s", pkg)
			}
		}
	}
}
