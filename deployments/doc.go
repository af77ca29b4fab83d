// Package deployments holds no code of its own: its tests check gwpipe's
// deployment artefacts beside this file, offline.
//
//   - docker/Dockerfile and compose/docker-compose.yaml: the Compose file is
//     loaded and validated by compose-go (the Compose specification loader
//     behind `docker compose config`), then its service graph is checked:
//     one service per stage, NATS transport, healthchecks, dependencies,
//     drain time, and every gwpipe environment variable against pkg/config.
//   - kubernetes/: every manifest is decoded strictly into the Kubernetes API
//     types (KEDA objects into mirrors of their CRD types), every kustomization
//     is rendered with the kustomize API, and the rendered fleets are checked:
//     probes, resources, grace period beyond the drain timeout, a
//     PodDisruptionBudget and exactly one autoscaler per Deployment, KEDA
//     triggers that name the right JetStream consumers and SQS queues, and the
//     gwpipe configuration each pod would load (pkg/config, unknown keys
//     rejected).
//   - aws/terraform/: every file is parsed with HCL, references to
//     variables, locals, resources, data sources and modules are resolved,
//     module calls are checked against the called modules' variables and
//     outputs, and the Firehose, IAM and SQS settings that matter are pinned.
//
// Run with `go test ./...` in this directory (GOWORK=off if the module is not
// in the workspace).
package deployments
