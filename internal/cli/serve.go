package cli

import (
	"fmt"
	"os"

	"github.com/cms-pcl/spyagency/internal/app"
	"github.com/cms-pcl/spyagency/internal/config"
	"github.com/cms-pcl/spyagency/internal/redact"
)

func runServe(e *env, args []string) error {
	fs := e.flags("serve", "serve [--config FILE] [--addr ADDR] [--store DSN]")
	file := fs.String("config", "", "configuration file (default: the built-in defaults)")
	addr := fs.String("addr", "", "listen address, overriding server.addr")
	dsn := fs.String("store", "", "store DSN (sqlite:PATH or postgres://...), overriding store.dsn")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	log, err := logger(e.stderr, *level)
	if err != nil {
		return err
	}
	cfg := config.Default()
	if *file != "" {
		if cfg, err = config.Load(*file); err != nil {
			return err
		}
		for _, w := range cfg.Warnings {
			log.Warn("configuration: "+w.Message, "file", w.File, "line", w.Line, "field", w.Field)
		}
	}
	if *addr != "" {
		cfg.Server.Addr = *addr
	}
	if *dsn != "" {
		cfg.Store.DSN = *dsn
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	version, _ := versionInfo()
	a, err := app.New(e.ctx, app.Options{Config: cfg, Logger: log, Version: version})
	if err != nil {
		return err
	}
	if len(cfg.Sources.Enabled()) == 0 {
		log.Warn("no source is configured: the agency serves its store but sees nothing new; see docs/configuration.md")
	}
	go func() {
		select {
		case <-a.Started():
			fmt.Fprintf(e.stderr, "spyagency: serving on http://%s (store %s)\n", a.Addr(), redact.URL(cfg.Store.DSN))
		case <-e.ctx.Done():
		}
	}()
	return a.Run(e.ctx, "")
}

func runConfig(e *env, args []string) error {
	const syn = "Usage: spyagency config check FILE | spyagency config example"
	if len(args) == 0 {
		fmt.Fprintln(e.stderr, syn)
		return errUsage
	}
	if isHelp(args[0]) {
		fmt.Fprintln(e.stdout, syn)
		return errHelp
	}
	switch args[0] {
	case "example":
		_, err := e.stdout.Write(config.ExampleYAML())
		return err
	case "check":
		fs := e.flags("config check", "config check FILE")
		if err := e.parse(fs, args[1:]); err != nil {
			return err
		}
		file, err := oneArg(fs, "configuration file")
		if err != nil {
			return err
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		problems := config.Check(file, data)
		for _, p := range problems {
			fmt.Fprintln(e.stderr, p.String())
		}
		errs := config.Errors(problems)
		if errs > 0 {
			return fmt.Errorf("%s: %d problem(s)", file, errs)
		}
		if warnings := len(problems) - errs; warnings > 0 {
			fmt.Fprintf(e.stdout, "%s: ok, with %d warning(s)\n", file, warnings)
			return nil
		}
		fmt.Fprintf(e.stdout, "%s: ok\n", file)
		return nil
	}
	fmt.Fprintf(e.stderr, "spyagency config: unknown subcommand %q (want check or example)\n", args[0])
	return errUsage
}
