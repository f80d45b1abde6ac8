package main

type bigRepoAnalysis struct{}

func (a *bigRepoAnalysis) markdown() string { return "" }

func (b *bench) scenarioRepoSize() error { return nil }
