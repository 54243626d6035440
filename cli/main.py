import click


@click.group()
def main():
    """hadcore: hyperspectral anomaly detection."""
