package deployments

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Mirrors of KEDA's keda.sh/v1alpha1 ScaledObject and TriggerAuthentication
// (github.com/kedacore/keda/v2/apis/keda/v1alpha1, KEDA 2.1x), written out
// here so that the manifests are decoded strictly without importing the
// operator. Only the fields of the CRD schemas are present: an unknown or
// misspelt field fails the strict decoding.

type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              scaledObjectSpec `json:"spec"`
}

type scaledObjectSpec struct {
	ScaleTargetRef        *scaleTarget    `json:"scaleTargetRef"`
	PollingInterval       *int32          `json:"pollingInterval,omitempty"`
	InitialCooldownPeriod *int32          `json:"initialCooldownPeriod,omitempty"`
	CooldownPeriod        *int32          `json:"cooldownPeriod,omitempty"`
	IdleReplicaCount      *int32          `json:"idleReplicaCount,omitempty"`
	MinReplicaCount       *int32          `json:"minReplicaCount,omitempty"`
	MaxReplicaCount       *int32          `json:"maxReplicaCount,omitempty"`
	Advanced              *advancedConfig `json:"advanced,omitempty"`
	Triggers              []scaleTrigger  `json:"triggers"`
	Fallback              *fallback       `json:"fallback,omitempty"`
}

type scaleTarget struct {
	Name                   string `json:"name"`
	APIVersion             string `json:"apiVersion,omitempty"`
	Kind                   string `json:"kind,omitempty"`
	EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
}

type fallback struct {
	FailureThreshold int32  `json:"failureThreshold"`
	Replicas         int32  `json:"replicas"`
	Behavior         string `json:"behavior,omitempty"`
}

type advancedConfig struct {
	HorizontalPodAutoscalerConfig *hpaConfig        `json:"horizontalPodAutoscalerConfig,omitempty"`
	RestoreToOriginalReplicaCount bool              `json:"restoreToOriginalReplicaCount,omitempty"`
	ScalingModifiers              *scalingModifiers `json:"scalingModifiers,omitempty"`
}

type scalingModifiers struct {
	Formula          string                         `json:"formula,omitempty"`
	Target           string                         `json:"target,omitempty"`
	ActivationTarget string                         `json:"activationTarget,omitempty"`
	MetricType       autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
}

type hpaConfig struct {
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
	Name     string                                         `json:"name,omitempty"`
}

type scaleTrigger struct {
	Type              string                         `json:"type"`
	Name              string                         `json:"name,omitempty"`
	UseCachedMetrics  bool                           `json:"useCachedMetrics,omitempty"`
	Metadata          map[string]string              `json:"metadata"`
	AuthenticationRef *authenticationRef             `json:"authenticationRef,omitempty"`
	MetricType        autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
}

type authenticationRef struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
}

type triggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              triggerAuthenticationSpec `json:"spec"`
}

type triggerAuthenticationSpec struct {
	PodIdentity     *authPodIdentity      `json:"podIdentity,omitempty"`
	SecretTargetRef []authSecretTargetRef `json:"secretTargetRef,omitempty"`
	Env             []authEnvironment     `json:"env,omitempty"`
}

type authPodIdentity struct {
	Provider      string  `json:"provider"`
	IdentityID    *string `json:"identityId,omitempty"`
	RoleArn       *string `json:"roleArn,omitempty"`
	ExternalID    *string `json:"externalID,omitempty"`
	IdentityOwner *string `json:"identityOwner,omitempty"`
}

type authSecretTargetRef struct {
	Parameter string `json:"parameter"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

type authEnvironment struct {
	Parameter     string `json:"parameter"`
	Name          string `json:"name"`
	ContainerName string `json:"containerName,omitempty"`
}

// scalerMetadata lists, per scaler type used here, the metadata keys KEDA
// reads (pkg/scalers/*_scaler.go) and those it requires.
var scalerMetadata = map[string]struct{ allowed, required []string }{
	"nats-jetstream": {
		allowed:  []string{"natsServerMonitoringEndpoint", "account", "accountID", "stream", "consumer", "lagThreshold", "activationLagThreshold", "useHttps"},
		required: []string{"natsServerMonitoringEndpoint", "account", "stream", "consumer"},
	},
	"aws-sqs-queue": {
		allowed:  []string{"queueURL", "queueLength", "activationQueueLength", "awsRegion", "awsEndpoint", "scaleOnInFlight", "scaleOnDelayed", "identityOwner"},
		required: []string{"queueURL", "awsRegion"},
	},
	"cpu": {
		allowed:  []string{"value", "type", "containerName"},
		required: []string{"value"},
	},
}
