terraform {
  required_version = ">= 1.5.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
  }
}

# The account that runs gwpipe (EKS cluster, archive bucket, pipeline role).
provider "aws" {
  alias   = "pipeline"
  region  = var.region
  profile = var.pipeline_profile
}

# Two source accounts whose API Gateway logs gwpipe ships.
provider "aws" {
  alias   = "prod"
  region  = var.region
  profile = var.prod_profile
}

provider "aws" {
  alias   = "staging"
  region  = var.region
  profile = var.staging_profile
}
